"""The MLflow plumbing both sides of a search share: one client per URI with the HTTP retries a
trial rides out a restarting server with, the one-line errors, the commit a run records, and the
``TrackingContext`` the driver hands every trial.

Who writes what (DESIGN.md "Trial results"): the driver creates the experiment and the parent run
(``search.parent_run``) and alone marks the runs of trials Ray Tune stopped
(``search.trial_runs``), since a stopped trial's thread never returns to log that; each trial
writes its own run from whichever node it runs on (``search.recorder``), straight to the tracking
URI, so with an ``mlflow server --serve-artifacts`` nothing needs a shared filesystem. Tag names
and statuses come from ``avcore.results`` (the contract with ``ensembling``) and
``avcore.results``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import TrackingError

# How long a trial rides out a slow or restarting tracking server (MLflow's client retries every
# HTTP call with exponential backoff, connection refused and 5xx included): 6 retries at factor 1
# wait 0+2+4+8+16+32 s, about a minute, each try given 60 s to answer. MLflow's own default (7
# retries at factor 2, 120 s each) can hold a trial for over 15 minutes. The environment may set
# others; past them a trial ends FAILED saying what it could not log (``LoggingFailed``).
HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "6",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


@dataclass(frozen=True)
class TrackingContext:
    """What a trial needs to log: sent to every trial through ``tune.with_parameters``."""

    uri: str
    experiment_id: str
    parent_run_id: str
    search: str
    git_commit: str


@functools.lru_cache(maxsize=4)
def client(uri: str):
    """One client per process and URI: opening a SQLite store checks its schema, which is slow."""
    from mlflow.tracking import MlflowClient

    from search.quiet import quiet_third_party

    quiet_third_party()  # before the first SQLite store is opened in this process
    for name, value in HTTP_RETRIES.items():
        os.environ.setdefault(name, value)
    return MlflowClient(tracking_uri=uri)


class LoggingFailed(TrackingError):
    """A trial's logging call still failed after the client's retries: the trial ends FAILED."""


@contextlib.contextmanager
def logging_step(uri: str, what: str):
    """A trial's MLflow call that failed past the retries, as ``LoggingFailed`` naming ``what``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as exc:  # requests' errors are OSErrors
        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        raise LoggingFailed(
            f"MLflow at {uri}: could not log {what} after {retries} retries: "
            f"{str(exc).splitlines()[0][:300]}"
        ) from exc


@contextlib.contextmanager
def one_line_errors(uri: str):
    """MLflow's errors (401 without credentials, 403, a server error) as one ``TrackingError``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise TrackingError(f"MLflow at {uri}: {str(exc).splitlines()[0]}") from None


def git_commit() -> str:
    """The commit of the working tree, or what the job environment says (``GIT_COMMIT``)."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def entities():
    """MLflow's ``Metric``, ``Param`` and ``RunTag``, imported on first use."""
    from mlflow.entities import Metric, Param, RunTag

    return Metric, Param, RunTag


def param_value(value: Any) -> str:
    """A param as MLflow stores it (a string, cut to its length limit)."""
    return str(value)[:6000]


def now_ms() -> int:
    """MLflow's timestamps: milliseconds since the epoch."""
    return int(time.time() * 1000)
