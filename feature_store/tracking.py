"""MLflow tracking for the jobs that train (``train-audio``, ``finetune``): one place that turns
``MLFLOW_TRACKING_URI`` (default: a SQLite file under ./mlruns, artifacts in ./mlruns/artifacts)
into a started client and an experiment id, and fails in seconds on a server that does not answer.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from feature_store.errors import StoreError

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACTS = "mlruns/artifacts"


def tracking_uri() -> str:
    """The tracking URI, with a local SQLite path made absolute: processes started elsewhere (Ray
    workers run in their own directories) then write to the same database."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    return uri


def start_mlflow(experiment: str) -> tuple[Any, str]:
    """MLflow with the project's defaults; returns the mlflow module and the experiment id."""
    import mlflow

    uri = tracking_uri()
    local = uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith(("http://", "https://")):
        _probe(uri)
    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return mlflow, found.experiment_id
        # A server with --serve-artifacts chooses its own artifact root; locally it is ./mlruns.
        location = Path(DEFAULT_ARTIFACTS).resolve().as_uri() if local else None
        return mlflow, mlflow.create_experiment(experiment, artifact_location=location)
    except Exception as exc:  # mlflow raises MlflowException, requests errors, SQL errors ...
        reason = " ".join(str(exc).split())[:200]
        raise StoreError(f"MLflow tracking at {uri}: {reason}") from None


def _probe(uri: str) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when the server does not answer."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5):
            pass
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StoreError(f"MLflow tracking server {uri} does not answer ({reason})") from None
