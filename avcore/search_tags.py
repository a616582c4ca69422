"""The MLflow tags a search's runs carry besides the results contract (``avcore.results``): what a
person reads in the MLflow UI about a trial or a search, which ``ensembling`` never needs.

Kept in a file of its own only because ``avcore.results`` belongs to another branch of the
restructuring (issue 13); it can be folded into ``avcore.results`` when the branches meet.

``GIT_COMMIT`` and ``MLFLOW_GIT_COMMIT`` (MLflow's own name, shown in its UI) hold the commit the
run trained; ``ERROR`` a failed run's one-line cause; ``STOP_REASON`` why the driver stopped a
trial; ``NODE_ID`` the Ray node a trial ran on; ``checksum(modality)`` and
``deep_validated(modality)`` the store a trial read and whether its features' sha256 was checked;
``BEST_RUN_ID`` and ``BEST_TRIAL_ID`` a finished search's best trial.
"""

from __future__ import annotations

GIT_COMMIT = "avfusion.git_commit"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
ERROR = "avfusion.error"
STOP_REASON = "avfusion.stop_reason"
NODE_ID = "avfusion.node_id"
BEST_RUN_ID, BEST_TRIAL_ID = "avfusion.best_run_id", "avfusion.best_trial_id"
MLFLOW_EXPERIMENT_KIND = "mlflow.experimentKind"


def checksum(modality: str) -> str:
    """``avfusion.visual_checksum`` / ``avfusion.audio_checksum``: the store's checksum."""
    return f"avfusion.{modality}_checksum"


def deep_validated(modality: str) -> str:
    """``avfusion.visual_deep_validated`` / ...: "true" once the features' sha256 was checked."""
    return f"avfusion.{modality}_deep_validated"
