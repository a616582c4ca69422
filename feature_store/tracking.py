"""MLflow tracking for the jobs that train (``train-audio``, ``finetune``): one place that turns
``MLFLOW_TRACKING_URI`` (``avcore.tracking``: default a SQLite file under ./mlruns, artifacts in
./mlruns/artifacts) into a started client and an experiment id, and fails in seconds on a server
that does not answer; ``training_run`` opens a run tagged with its job's kind
(``avcore.results.KIND``) and hands out a ``TrainingRun`` that logs by what a job records
(params, per-epoch metrics, files, JSON), so the jobs hold no MLflow calls of their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from avcore import tracking as where
from avcore.results import KIND
from feature_store.errors import StoreError


class Tracking(NamedTuple):
    """A started MLflow: the module (its tracking URI set) and the experiment's id."""

    mlflow: Any
    experiment_id: str


def start_mlflow(experiment: str) -> Tracking:
    """MLflow with the project's defaults, and the experiment (created when it is new)."""
    import mlflow

    uri = where.open_uri(error=StoreError)
    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return Tracking(mlflow, found.experiment_id)
        # A server with --serve-artifacts chooses its own artifact root; SQLite keeps it beside.
        location = where.artifact_root(uri)
        return Tracking(mlflow, mlflow.create_experiment(experiment, artifact_location=location))
    except Exception as exc:  # mlflow raises MlflowException, requests errors, SQL errors ...
        reason = " ".join(str(exc).split())[:200]
        raise StoreError(f"MLflow tracking at {uri}: {reason}") from None


class TrainingRun:
    """The open MLflow run of a training job (see ``training_run``)."""

    def __init__(self, mlflow: Any, run_id: str) -> None:
        self._mlflow, self.run_id = mlflow, run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._mlflow.log_params(dict(params))

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        self._mlflow.log_metrics(dict(metrics), step=step)

    def log_file(self, path: Path) -> None:
        """``path`` as an artifact at the run's root, under its own name."""
        self._mlflow.log_artifact(str(path))

    def log_json(self, value: Any, name: str) -> None:
        self._mlflow.log_text(json.dumps(value, indent=1), name)


@contextmanager
def training_run(tracking: Tracking, *, name: str, kind: str) -> Iterator[TrainingRun]:
    """A new run named ``name`` in the started experiment, tagged ``avfusion.kind=kind``; it ends
    FINISHED, or FAILED when the block raises."""
    with tracking.mlflow.start_run(experiment_id=tracking.experiment_id, run_name=name) as run:
        tracking.mlflow.set_tag(KIND, kind)
        yield TrainingRun(tracking.mlflow, run.info.run_id)
