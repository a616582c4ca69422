"""The driver's side of MLflow: the search's experiment and its parent run, from creation through
a resume to the end (finished with the best trial and the leaderboard, failed, or interrupted).

The driver creates the experiment before any trial starts, so concurrent trials never race on
creating it. The parent run holds every search setting as a param, the YAML as ``search.yaml``,
which driver holds the search (``avcore.results.DRIVER``) and, at the end, the leaderboard as CSV
and as an MLflow table, the best trial, and Optuna's plots (``search.study``).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from avcore import results
from avcore import tracking as where
from avcore.results import (
    DRIVER,
    FAILED,
    FINISHED,
    INTERRUPTED,
    KIND,
    RUNNING,
    SEARCH,
    SEARCH_RUN,
    STATUS,
    STOPPED_EARLY,
)
from avcore.tracking import MAX_TAG
from search.errors import TrackingError
from search.tracking import client, entities, now_ms, one_line_errors, param_value


def ensure_experiment(uri: str, name: str) -> str:
    """The experiment's id, created (or restored from deletion) by the driver."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(uri)
    with one_line_errors(uri):
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = mlflow_client.create_experiment(
                    name, artifact_location=where.artifact_root(uri)
                )
            except MlflowException:  # created meanwhile by another driver
                experiment = mlflow_client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                mlflow_client.restore_experiment(experiment.experiment_id)
            experiment_id = experiment.experiment_id
        # MLflow 3's UI opens an experiment without this tag on its GenAI (traces) pages, and
        # charts the primary metric first (the parallel-coordinates plot's colour included).
        mlflow_client.set_experiment_tag(
            experiment_id, results.MLFLOW_EXPERIMENT_KIND, "custom_model_development"
        )
        mlflow_client.set_experiment_tag(experiment_id, results.MLFLOW_PRIMARY_METRIC, "val_acc")
    return experiment_id


def start_parent_run(uri: str, experiment_id: str, config: Any, commit: str) -> str:
    """The search's parent run: every setting as a param, the YAML as ``search.yaml``."""
    import yaml

    _, Param, _ = entities()
    mlflow_client = client(uri)
    run = mlflow_client.create_run(
        experiment_id,
        run_name=f"search-{config.name}",
        tags={
            KIND: SEARCH_RUN,
            SEARCH: config.name,
            STATUS: RUNNING,
            results.GIT_COMMIT: commit,
            results.MLFLOW_GIT_COMMIT: commit,
        },
    )
    run_id = run.info.run_id
    mlflow_client.log_batch(
        run_id, params=[Param(k, param_value(v)) for k, v in config.flat().items()]
    )
    mlflow_client.log_text(
        run_id, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), "search.yaml"
    )
    return run_id


def log_data(uri: str, run_id: str, record: dict[str, Any]) -> None:
    """The search's data as ``data.json`` (dataset, classes, protocol, the fold's val carve)."""
    client(uri).log_dict(run_id, record, "data.json")


def find_parent_run(uri: str, experiment_id: str, search: str) -> str | None:
    """The latest parent run of the search ``search`` in the experiment."""
    runs = client(uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`{KIND}` = '{SEARCH_RUN}' and tags.`{SEARCH}` = '{search}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def set_driver(uri: str, parent_run_id: str, holder: str) -> None:
    """Which driver holds the search (``search.lock``): who to wait for, shown in the UI."""
    client(uri).set_tag(parent_run_id, DRIVER, holder)


def check_parent_run(uri: str, experiment_id: str, parent_run_id: str, search: str) -> None:
    """Before a resume: the parent run the search was started with is there to continue."""
    from mlflow.exceptions import MlflowException

    try:
        run = client(uri).get_run(parent_run_id)
    except MlflowException:
        run = None
    if (
        run is None
        or run.info.lifecycle_stage == "deleted"
        or run.info.experiment_id != experiment_id
    ):
        raise TrackingError(
            f"search {search!r}: its MLflow parent run {parent_run_id} is not in experiment "
            f"{experiment_id} at {uri} (was the search recorded under another tracking URI?)"
        )


def reopen_parent_run(uri: str, parent_run_id: str) -> None:
    """A resumed search's parent run shows as running again until it finishes."""
    _, _, RunTag = entities()
    mlflow_client = client(uri)
    mlflow_client.log_batch(parent_run_id, tags=[RunTag(STATUS, RUNNING)])
    mlflow_client.update_run(parent_run_id, status="RUNNING")


@contextlib.contextmanager
def failing_parent(uri: str, parent_run_id: str):
    """Whatever stops the driver with an exception ends the parent run FAILED, never RUNNING
    (Ctrl+C is no failure: the driver records it as interrupted)."""
    try:
        yield
    except Exception as exc:
        fail_parent_run(uri, parent_run_id, f"driver failed: {exc!r}")
        raise


def fail_parent_run(uri: str, parent_run_id: str, error: str) -> None:
    """The driver itself failed after the parent run was created: never left RUNNING."""
    _, _, RunTag = entities()
    mlflow_client = client(uri)
    mlflow_client.log_batch(
        parent_run_id,
        tags=[RunTag(STATUS, FAILED), RunTag(results.ERROR, error[:MAX_TAG])],
    )
    mlflow_client.set_terminated(parent_run_id, "FAILED")


def interrupt_parent_run(uri: str, parent_run_id: str) -> None:
    """A search stopped by Ctrl+C: KILLED in MLflow and tagged interrupted until it is resumed."""
    _, _, RunTag = entities()
    mlflow_client = client(uri)
    mlflow_client.log_batch(parent_run_id, tags=[RunTag(STATUS, INTERRUPTED)])
    mlflow_client.set_terminated(parent_run_id, "KILLED")


def finish_parent_run(uri: str, parent_run_id: str, table, study: Any | None) -> None:
    """Best trial, leaderboard (CSV and an MLflow table) and Optuna's plots on the parent run."""
    from search.study_plots import draw_study_plots

    Metric, _, RunTag = entities()
    mlflow_client = client(uri)
    finished = table[table["status"] == FINISHED]
    # A search in which no trial finished failed (every trial raised, or its nodes were lost).
    tags = [RunTag(STATUS, FINISHED if not finished.empty else FAILED)]
    metrics = []
    now = now_ms()
    if not finished.empty:
        best = finished.iloc[0]
        tags += [
            RunTag(results.BEST_RUN_ID, best.run_id),
            RunTag(results.BEST_TRIAL_ID, best.trial_id),
        ]
        metrics.append(Metric("best_val_acc", float(best.val_acc), now, 0))
    for status in (FINISHED, STOPPED_EARLY, FAILED):
        metrics.append(Metric(f"trials_{status}", float((table["status"] == status).sum()), now, 0))
    mlflow_client.log_batch(parent_run_id, metrics=metrics, tags=tags)
    with tempfile.TemporaryDirectory() as folder:
        table.to_csv(Path(folder, "leaderboard.csv"), index=False)
        if not finished.empty:
            Path(folder, "best_trial.json").write_text(
                json.dumps(finished.iloc[0].to_dict(), indent=2, default=str)
            )
        if study is not None:
            draw_study_plots(study, Path(folder))
        mlflow_client.log_artifacts(parent_run_id, folder)
    mlflow_client.log_table(
        parent_run_id, table.drop(columns="error").fillna(""), "leaderboard.json"
    )
    mlflow_client.set_terminated(parent_run_id, "FINISHED" if not finished.empty else "FAILED")
