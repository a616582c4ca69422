"""Greedy ensembles of search trials with per-class score weights, and the submission writer.

Reads only MLflow runs and ``scores.npz`` files (DESIGN.md "Trial results"); imports none of our
other packages and needs neither torch nor ray. CLI: ``python -m ensembling --help``. The names
below load on first use (``avcore.lazy``), so the CLI's ``--help`` does not pay for numpy.
"""

from __future__ import annotations

from avcore.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "ensembling.build": ["Ensemble", "Recipe", "build", "fit"],
        "ensembling.class_weights": ["PRESETS", "ClassWeightSpec", "register", "resolve"],
        "ensembling.crossval": ["CrossValidated", "cross_validate"],
        "ensembling.errors": [
            "ClassWeightError",
            "EnsembleError",
            "OutputError",
            "ScoresError",
            "TrackingError",
        ],
        "ensembling.greedy": ["Selection", "bagged_select", "combine", "select"],
        "ensembling.sources": ["Candidate", "ScoreSet", "align", "from_dirs", "load_scores"],
        "ensembling.trial_runs": ["from_mlflow"],
    },
)
