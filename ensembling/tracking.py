"""MLflow connection for ``ensembling``: which tracking URI, whether it answers, and logging an
ensemble as a run tagged ``avfusion.kind=ensemble``, with its members (``avfusion.members``,
``avfusion.member_names``) and, when they all come from one search, nested under that search's
parent run (``mlflow.parentRunId``).

The URI is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the embedded default
``sqlite:///mlruns/mlflow.db`` (artifacts under ``./mlruns/artifacts``), as ``avcore.tracking``
resolves it for every package. A server that does not answer fails in seconds
(``avcore.tracking.probe``): MLflow's own client would retry for minutes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from avcore import tracking
from avcore.results import ENSEMBLE, KIND, MEMBER_NAMES, MEMBERS, PARENT
from ensembling.errors import TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ensembling.sources import Candidate


def connect(uri: str | None, *, must_exist: bool = True) -> MlflowClient:
    """A client for ``uri``; one clear ``TrackingError`` when nothing is there to read."""
    uri = tracking.resolve_uri(uri)
    # Our own bar counts runs; MLflow's would print one bar per downloaded file.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    database = tracking.sqlite_path(uri)
    if tracking.is_http(uri):
        # Fail fast instead of MLflow's default of 7 retries with exponential backoff.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        tracking.probe(uri, error=TrackingError)
    elif database is not None and must_exist and not database.is_file():
        raise TrackingError(
            f"no MLflow database at {database} (tracking URI {uri}); "
            "pass --tracking-uri or set MLFLOW_TRACKING_URI"
        )
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri)
    if tracking.is_http(uri):
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


def experiment_id_for(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when missing. As ``search`` does, a SQLite store
    keeps artifacts in ``artifacts/`` beside its file (./mlruns/artifacts on the default); a
    tracking server decides for itself."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(
        name, artifact_location=tracking.artifact_root(client.tracking_uri)
    )


def start_ensemble_run(
    client: MlflowClient, experiment_id: str, run_name: str, members: list[Candidate]
) -> str:
    """The ensemble's run, tagged with ``members`` (heaviest first) and linked to their search."""
    run = client.create_run(
        experiment_id, run_name=run_name, tags={KIND: ENSEMBLE, **member_tags(client, members)}
    )
    return run.info.run_id


def member_tags(client: MlflowClient, members: list[Candidate]) -> dict[str, str]:
    """The members' run ids and names, and the search parent run they share (if one)."""
    runs = [m for m in members if m.run_id]
    parents = {client.get_run(m.run_id).data.tags.get(PARENT) for m in runs}
    tags = {
        MEMBERS: ",".join(str(m.run_id) for m in runs)[: tracking.MAX_TAG],
        MEMBER_NAMES: ", ".join(m.name for m in members)[: tracking.MAX_TAG],
    }
    if len(parents) == 1 and None not in parents:
        tags[PARENT] = parents.pop()
    return {key: value for key, value in tags.items() if value}


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
