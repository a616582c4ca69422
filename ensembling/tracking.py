"""MLflow connection for ``ensembling``: which tracking URI, whether it answers, and logging an
ensemble as a run tagged ``avfusion.kind=ensemble``.

The URI is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the embedded default
``sqlite:///mlruns/mlflow.db`` (artifacts under ``./mlruns/artifacts``). A server that does not
answer fails in seconds: MLflow's own client would retry for minutes.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from ensembling.errors import TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
PROBE_TIMEOUT_S = 5.0


def resolve_uri(uri: str | None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def connect(uri: str | None, *, must_exist: bool = True) -> MlflowClient:
    """A client for ``uri``; one clear ``TrackingError`` when nothing is there to read."""
    uri = resolve_uri(uri)
    # Our own bar counts runs; MLflow's would print one bar per downloaded file.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if uri.startswith(("http://", "https://")):
        # Fail fast instead of MLflow's default of 7 retries with exponential backoff.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        _probe(uri)
    elif uri.startswith("sqlite:///") and must_exist:
        database = Path(uri.removeprefix("sqlite:///"))
        if not database.is_file():
            raise TrackingError(
                f"no MLflow database at {database} (tracking URI {uri}); "
                "pass --tracking-uri or set MLFLOW_TRACKING_URI"
            )
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri)
    if uri.startswith(("http://", "https://")):
        # A server behind authentication refuses a client without (or with wrong) credentials:
        # say so in one line before any work, naming MLflow's variables for them.
        try:
            client.search_experiments(max_results=1)
        except MlflowException as exc:
            first = str(exc).splitlines()[0]
            hint = (
                "; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                if " 401 " in first or " 403 " in first
                else ""
            )
            raise TrackingError(f"tracking server {uri}: {first[:200]}{hint}") from None
    return client


def _probe(uri: str) -> None:
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered, if not on /health; the real requests will say more
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"tracking server {uri} does not answer ({reason})") from None


def experiment_id_for(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when missing. As ``search`` does, a SQLite store
    keeps artifacts in ``artifacts/`` beside its file (./mlruns/artifacts on the default); a
    tracking server decides for itself."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifact_location = None
    if client.tracking_uri.startswith("sqlite:///"):
        database = Path(client.tracking_uri.removeprefix("sqlite:///"))
        artifact_location = (database.parent / "artifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=artifact_location)


def start_ensemble_run(client: MlflowClient, experiment_id: str, run_name: str) -> str:
    run = client.create_run(experiment_id, run_name=run_name, tags={"avfusion.kind": "ensemble"})
    return run.info.run_id


def log_ensemble_run(
    client: MlflowClient,
    run_id: str,
    *,
    params: dict[str, object],
    metrics: dict[str, float],
    out_dir: Path,
) -> None:
    """Log params, metrics and every file of ``out_dir``, then end the run FINISHED."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
        # MLflow caps a param value's length; a long filter string is cut, not refused.
        params=[Param(key, str(value)[:6000]) for key, value in params.items()],
    )
    client.log_artifacts(run_id, str(out_dir))
    client.set_terminated(run_id)
