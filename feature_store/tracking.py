"""MLflow tracking for the jobs that train (``train-audio``, ``finetune``): one place that turns
``MLFLOW_TRACKING_URI`` (``avcore.tracking``: default a SQLite file under ./mlruns, artifacts in
./mlruns/artifacts) into a started client and an experiment id, and fails in seconds on a server
that does not answer.
"""

from __future__ import annotations

from typing import Any

from avcore import tracking as where
from feature_store.errors import StoreError


def start_mlflow(experiment: str) -> tuple[Any, str]:
    """MLflow with the project's defaults; returns the mlflow module and the experiment id."""
    import mlflow

    uri = where.open_uri(error=StoreError)
    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return mlflow, found.experiment_id
        # A server with --serve-artifacts chooses its own artifact root; SQLite keeps it beside.
        location = where.artifact_root(uri)
        return mlflow, mlflow.create_experiment(experiment, artifact_location=location)
    except Exception as exc:  # mlflow raises MlflowException, requests errors, SQL errors ...
        reason = " ".join(str(exc).split())[:200]
        raise StoreError(f"MLflow tracking at {uri}: {reason}") from None
