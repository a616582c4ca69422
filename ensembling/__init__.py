"""Greedy ensembles of search trials with per-class score weights, and the submission writer.

Reads only MLflow runs and ``scores.npz`` files (DESIGN.md "Trial results"); imports none of our
other packages and needs neither torch nor ray. CLI: ``python -m ensembling --help``.
"""

from __future__ import annotations

from avcore.afew import CLASSES
from ensembling.build import Ensemble, Recipe, build, fit
from ensembling.class_weights import PRESETS, ClassWeightSpec, register, resolve
from ensembling.crossval import CrossValidated, cross_validate
from ensembling.errors import (
    ClassWeightError,
    EnsembleError,
    OutputError,
    ScoresError,
    TrackingError,
)
from ensembling.greedy import Selection, bagged_select, combine, select
from ensembling.sources import Candidate, ScoreSet, align, from_dirs, load_scores
from ensembling.trial_runs import from_mlflow

__all__ = [
    "CLASSES",
    "PRESETS",
    "Candidate",
    "ClassWeightError",
    "ClassWeightSpec",
    "CrossValidated",
    "Ensemble",
    "EnsembleError",
    "OutputError",
    "Recipe",
    "ScoreSet",
    "ScoresError",
    "Selection",
    "TrackingError",
    "align",
    "bagged_select",
    "build",
    "combine",
    "cross_validate",
    "fit",
    "from_dirs",
    "from_mlflow",
    "load_scores",
    "register",
    "resolve",
    "select",
]
