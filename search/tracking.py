"""MLflow for a search: the experiment and parent run (driver side) and one child run per trial
(trial side), as DESIGN.md's "Trial results" describes.

Trials log straight to the tracking URI from whichever node they run on, so with an
``mlflow server --serve-artifacts`` nothing needs a shared filesystem. The driver creates the
experiment before any trial starts (concurrent trials never race on creating it), and it alone marks
runs that Ray Tune stopped (ASHA, time limit): a stopped trial's thread never returns to log that.

Tags every trial run carries: ``avfusion.kind=trial``, ``avfusion.status`` (running, finished,
stopped_early, failed), ``avfusion.search``, ``avfusion.trial_id``, ``avfusion.node_id``,
``avfusion.git_commit`` (and ``mlflow.source.git.commit``), ``avfusion.visual_checksum``,
``avfusion.audio_checksum``, ``avfusion.visual_deep_validated`` and ``avfusion.audio_deep_validated``
(true once ``stores.validate_deep`` checked the features' sha256), ``mlflow.parentRunId``. The parent
run is ``avfusion.kind=search``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import tempfile
import time
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avcore import tracking as where
from avcore.results import (
    DRIVER,
    FAILED,
    FINISHED,
    INTERRUPTED,
    KIND,
    PARENT,
    RUNNING,
    SEARCH,
    STATUS,
    STOPPED_EARLY,
    TRIAL_ID,
)
from search.errors import TrackingError

_MAX_TAG = 5000


# -- where MLflow lives -------------------------------------------------------------------------
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


@functools.lru_cache(maxsize=4)
def client(uri: str):
    """One client per process and URI: opening a SQLite store checks its schema, which is slow."""
    from mlflow.tracking import MlflowClient

    for name, value in HTTP_RETRIES.items():
        os.environ.setdefault(name, value)
    return MlflowClient(tracking_uri=uri)


class LoggingFailed(TrackingError):
    """A trial's logging call still failed after the client's retries: the trial ends FAILED."""


@contextlib.contextmanager
def _logging(uri: str, what: str):
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


def ensure_experiment(uri: str, name: str) -> str:
    """The experiment's id, created (or restored from deletion) by the driver."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(uri)
    try:
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
        # MLflow 3's UI opens an experiment without this tag on its GenAI (traces) pages.
        mlflow_client.set_experiment_tag(
            experiment_id, "mlflow.experimentKind", "custom_model_development"
        )
    except MlflowException as exc:
        raise TrackingError(f"MLflow at {uri}: {str(exc).splitlines()[0]}") from None
    return experiment_id


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


def _entities():
    from mlflow.entities import Metric, Param, RunTag

    return Metric, Param, RunTag


def _param_value(value: Any) -> str:
    return str(value)[:6000]


# -- the trial's run (runs inside the trial, on any node) ---------------------------------------
@dataclass(frozen=True)
class TrackingContext:
    """What a trial needs to log: sent to every trial through ``tune.with_parameters``."""

    uri: str
    experiment_id: str
    parent_run_id: str
    search: str
    git_commit: str


class TrialRecorder:
    """One trial's MLflow run: params and tags on start, a metric batch per epoch, artifacts and
    the final status at the end."""

    def __init__(
        self,
        context: TrackingContext,
        *,
        trial_id: str,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        config_yaml: str,
        kind: str = "trial",
    ) -> None:
        Metric, Param, RunTag = _entities()
        self.client = client(context.uri)
        all_tags = {
            KIND: kind,
            STATUS: RUNNING,
            SEARCH: context.search,
            TRIAL_ID: trial_id,
            PARENT: context.parent_run_id,
            "avfusion.git_commit": context.git_commit,
            "mlflow.source.git.commit": context.git_commit,
            **tags,
        }
        self.uri = context.uri
        with _logging(self.uri, "the trial's run"):
            run = self.client.create_run(context.experiment_id, tags=all_tags, run_name=run_name)
        self.run_id = run.info.run_id
        with _logging(self.uri, "the trial's params and config.yaml"):
            self.client.log_batch(
                self.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()]
            )
            # config.yaml goes up first, so a trial stopped early still shows what it trained.
            with tempfile.TemporaryDirectory() as folder:
                Path(folder, "config.yaml").write_text(config_yaml)
                self.client.log_artifact(self.run_id, str(Path(folder, "config.yaml")))
        self._last: dict[str, float] = {}
        self._step = 0

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        Metric, _, _ = _entities()
        now = int(time.time() * 1000)
        self._step = int(metrics.get("epoch", self._step + 1))
        values = {k: float(v) for k, v in metrics.items() if k != "epoch" and _is_number(v)}
        with _logging(self.uri, f"epoch {self._step}'s metrics"):
            self.client.log_batch(
                self.run_id, metrics=[Metric(k, v, now, self._step) for k, v in values.items()]
            )
        self._last = values

    def finish(self, result: Any) -> None:
        """Final metrics, ``scores.npz`` and ``attention.json``, status ``finished``. The PNG plots
        are drawn from these two files off the trial's critical path (``search.plots``)."""
        Metric, _, RunTag = _entities()
        now = int(time.time() * 1000)
        final = {
            k: float(v)
            for k, v in (result.metrics or {}).items()
            if k not in ("epoch", "epochs") and _is_number(v) and self._last.get(k) != float(v)
        }
        with tempfile.TemporaryDirectory() as folder, _logging(self.uri, "the trial's results"):
            result.save_scores(Path(folder, "scores.npz"))
            Path(folder, "attention.json").write_text(json.dumps(result.attention, default=_plain))
            self.client.log_artifacts(self.run_id, folder)
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, now, self._step) for k, v in final.items()],
                tags=[RunTag(STATUS, FINISHED), RunTag("avfusion.epochs_done", str(self._step))],
            )
            self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, error: BaseException) -> None:
        """Status ``failed`` with the error as a tag and its traceback as ``error.txt``. When the
        server cannot take even that, the error goes on to Tune and the driver marks the run
        FAILED with it once the server answers again (``mark_failed_if_running``)."""
        _, _, RunTag = _entities()
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        summary = f"{type(error).__name__}: {error}"[:_MAX_TAG]
        try:
            self.client.log_text(self.run_id, text, "error.txt")
            self.client.log_batch(
                self.run_id,
                tags=[RunTag(STATUS, FAILED), RunTag("avfusion.error", summary)],
            )
            self.client.set_terminated(self.run_id, "FAILED")
        except Exception:  # noqa: BLE001 - the trial's own error is what must surface
            traceback.print_exc()


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as JSON lists and numbers."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- driver side: the parent run, runs Tune stopped, the leaderboard ---------------------------
def start_parent_run(uri: str, experiment_id: str, config: Any, commit: str) -> str:
    """The search's parent run: every setting as a param, the YAML as ``search.yaml``."""
    import yaml

    _, Param, _ = _entities()
    mlflow_client = client(uri)
    run = mlflow_client.create_run(
        experiment_id,
        run_name=f"search-{config.name}",
        tags={
            KIND: "search",
            SEARCH: config.name,
            STATUS: RUNNING,
            "avfusion.git_commit": commit,
            "mlflow.source.git.commit": commit,
        },
    )
    run_id = run.info.run_id
    mlflow_client.log_batch(
        run_id, params=[Param(k, _param_value(v)) for k, v in config.flat().items()]
    )
    mlflow_client.log_text(
        run_id, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), "search.yaml"
    )
    return run_id


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
    _, _, RunTag = _entities()
    mlflow_client = client(uri)
    mlflow_client.log_batch(parent_run_id, tags=[RunTag(STATUS, RUNNING)])
    mlflow_client.update_run(parent_run_id, status="RUNNING")


def interrupt_parent_run(uri: str, parent_run_id: str) -> None:
    """A search stopped by Ctrl+C: KILLED in MLflow and tagged interrupted until it is resumed."""
    _, _, RunTag = _entities()
    mlflow_client = client(uri)
    mlflow_client.log_batch(parent_run_id, tags=[RunTag(STATUS, INTERRUPTED)])
    mlflow_client.set_terminated(parent_run_id, "KILLED")


def end_stopped_trial_runs(
    uri: str, experiment_id: str, parent_run_id: str, status: str, reason: str
) -> int:
    """Trial runs still ``running`` once ``Tuner.fit`` has returned belong to trials Tune stopped
    as the search ended (its time limit, or Ctrl+C): ``status`` (stopped_early: truncated, never
    ranked; interrupted: ``resume`` replaces them), the epochs they reached, KILLED in MLflow."""
    _, _, RunTag = _entities()
    mlflow_client = client(uri)
    runs = trial_runs(uri, experiment_id, parent_run_id)
    stopped = [r for r in runs if r.data.tags.get(STATUS) == RUNNING]
    for run in stopped:
        epochs = len(mlflow_client.get_metric_history(run.info.run_id, "val_acc"))
        tags = [
            RunTag(STATUS, status),
            RunTag("avfusion.epochs_done", str(epochs)),
            RunTag("avfusion.stop_reason", reason),
        ]
        mlflow_client.log_batch(run.info.run_id, tags=tags)
        mlflow_client.set_terminated(run.info.run_id, "KILLED")
    return len(stopped)


def find_parent_run(uri: str, experiment_id: str, search: str) -> str | None:
    runs = client(uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`{KIND}` = 'search' and tags.`{SEARCH}` = '{search}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def mark_stopped(uri: str, run_id: str, epochs_done: int) -> None:
    """A trial Tune stopped before its last epoch: never a finished result."""
    _, _, RunTag = _entities()
    mlflow_client = client(uri)
    mlflow_client.log_batch(
        run_id,
        tags=[RunTag(STATUS, STOPPED_EARLY), RunTag("avfusion.epochs_done", str(epochs_done))],
    )
    mlflow_client.set_terminated(run_id, "KILLED")


def mark_failed_if_running(uri: str, run_id: str, error: str) -> None:
    """A trial whose worker died before it could record its own failure."""
    _, _, RunTag = _entities()
    mlflow_client = client(uri)
    run = mlflow_client.get_run(run_id)
    if run.data.tags.get(STATUS) != RUNNING:
        return
    mlflow_client.log_batch(
        run_id, tags=[RunTag(STATUS, FAILED), RunTag("avfusion.error", error[:_MAX_TAG])]
    )
    mlflow_client.set_terminated(run_id, "FAILED")


def drop_interrupted_runs(uri: str, experiment_id: str, parent_run_id: str) -> int:
    """Before a resume: runs still ``running`` (the driver was killed) or ``interrupted`` (Ctrl+C)
    belong to trials Tune will start again from scratch, so they are deleted rather than left
    beside their rerun."""
    mlflow_client = client(uri)
    runs = trial_runs(uri, experiment_id, parent_run_id)
    interrupted = [r for r in runs if r.data.tags.get(STATUS) in (RUNNING, INTERRUPTED)]
    for run in interrupted:
        mlflow_client.delete_run(run.info.run_id)
    return len(interrupted)


def runs_of_trial(context: TrackingContext, trial_id: str) -> list[Any]:
    """The runs a trial already has in this search: more than none only when a resumed search
    starts a trial again that the interrupted driver had started (or even finished)."""
    return client(context.uri).search_runs(
        [context.experiment_id],
        filter_string=f"tags.`{PARENT}` = '{context.parent_run_id}' and tags.`{KIND}` = 'trial'"
        f" and tags.`{TRIAL_ID}` = '{trial_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=100,
    )


def replace_trial_runs(context: TrackingContext, trial_id: str, reason: str) -> int:
    """A trial Tune retries (it raised, or its node died): its earlier attempt's run ends FAILED
    and is deleted, so the retry's run is the trial's only one (never counted twice)."""
    runs = [r for r in runs_of_trial(context, trial_id) if r.data.tags.get(STATUS) != FINISHED]
    for run in runs:
        mark_failed_if_running(context.uri, run.info.run_id, reason)
    delete_runs(context.uri, [r.info.run_id for r in runs])
    return len(runs)


def delete_runs(uri: str, run_ids: list[str]) -> None:
    mlflow_client = client(uri)
    for run_id in run_ids:
        mlflow_client.delete_run(run_id)


def drop_unknown_trials(
    uri: str, experiment_id: str, parent_run_id: str, trial_ids: set[str]
) -> int:
    """After a resume: runs of trials the restored Tune state never knew (started after its last
    snapshot, then interrupted) are deleted; Tune sampled replacements for them, so keeping them
    would leave more trials in MLflow than the search ran."""
    runs = trial_runs(uri, experiment_id, parent_run_id)
    unknown = [r.info.run_id for r in runs if r.data.tags.get(TRIAL_ID) not in trial_ids]
    delete_runs(uri, unknown)
    return len(unknown)


def trial_runs(uri: str, experiment_id: str, parent_run_id: str) -> list[Any]:
    return client(uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT}` = '{parent_run_id}' and tags.`{KIND}` = 'trial'",
        max_results=50000,
    )


LEADERBOARD_COLUMNS = (
    "val_acc",
    "val_uar",
    "visual_feature",
    "audio_feature",
    "visual_attention",
    "audio_attention",
    "fusion",
)


def leaderboard(uri: str, experiment_id: str, parent_run_id: str):
    """Every trial run as a DataFrame: finished ones first by val_acc, then the rest; a
    stopped-early trial's truncated val_acc is kept but never ranked among the finished."""
    import pandas as pd

    rows = []
    for run in trial_runs(uri, experiment_id, parent_run_id):
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        rows.append(
            {
                "run_id": run.info.run_id,
                "trial_id": tags.get(TRIAL_ID, ""),
                "status": tags.get(STATUS, ""),
                "epochs": int(tags.get("avfusion.epochs_done", 0) or 0),
                "val_acc": metrics.get("val_acc"),
                "val_uar": metrics.get("val_uar"),
                "node": tags.get("avfusion.node_id", "")[:8],
                **{k: params.get(k) for k in LEADERBOARD_COLUMNS[2:]},
                "error": tags.get("avfusion.error", ""),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=["run_id", "trial_id", "status", "epochs", *LEADERBOARD_COLUMNS, "node", "error"],
    )
    table["rank_key"] = (table["status"] == FINISHED).astype(int)
    table = table.sort_values(["rank_key", "val_acc"], ascending=[False, False], na_position="last")
    return table.drop(columns="rank_key").reset_index(drop=True)


def format_leaderboard(
    table, oracle: Mapping[tuple[str, str], float] | None = None, limit: int = 20
) -> str:
    """A plain-text leaderboard; with ``oracle`` each trial's val_acc beside its pair's oracle."""
    if table.empty:
        return "no trials recorded yet"
    counts = table["status"].value_counts().to_dict()
    lines = [
        "trials: "
        + ", ".join(
            f"{counts.get(s, 0)} {s.replace('_', ' ')}"
            for s in (FINISHED, STOPPED_EARLY, FAILED, RUNNING)
        )
        + (f", {counts[INTERRUPTED]} interrupted" if counts.get(INTERRUPTED) else "")
    ]
    header = f"{'#':>3} {'status':<13} {'ep':>3} {'val_acc':>7}"
    header += f" {'oracle':>6} {'ratio':>6}" if oracle else ""
    header += f"  {'visual':<10} {'audio':<12} {'v-attn':<11} {'a-attn':<11} {'fusion':<6} run"
    lines.append(header)
    for rank, row in enumerate(table.head(limit).itertuples(index=False), 1):
        acc = "" if row.val_acc is None or row.val_acc != row.val_acc else f"{row.val_acc:.4f}"
        line = f"{rank:>3} {row.status:<13} {row.epochs:>3} {acc:>7}"
        if oracle:
            best = oracle.get((row.visual_feature, row.audio_feature))
            ratio = f"{row.val_acc / best:.3f}" if best and acc else ""
            line += f" {best or float('nan'):>6.4f} {ratio:>6}"
        line += (
            f"  {row.visual_feature or '':<10} {row.audio_feature or '':<12} {row.visual_attention or '':<11}"
            f" {row.audio_attention or '':<11} {row.fusion or '':<6} {row.run_id[:8]}"
        )
        if row.status == FAILED and row.error:
            line += f"  {row.error[:80]}"
        lines.append(line)
    if len(table) > limit:
        lines.append(f"... {len(table) - limit} more")
    return "\n".join(lines)


def finish_parent_run(uri: str, parent_run_id: str, table, study: Any | None) -> None:
    """Best trial, leaderboard (CSV and an MLflow table) and Optuna's plots on the parent run."""
    Metric, _, RunTag = _entities()
    mlflow_client = client(uri)
    finished = table[table["status"] == FINISHED]
    # A search in which no trial finished failed (every trial raised, or its nodes were lost).
    tags = [RunTag(STATUS, FINISHED if not finished.empty else FAILED)]
    metrics = []
    now = int(time.time() * 1000)
    if not finished.empty:
        best = finished.iloc[0]
        tags += [
            RunTag("avfusion.best_run_id", best.run_id),
            RunTag("avfusion.best_trial_id", best.trial_id),
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
            _optuna_plots(study, Path(folder))
        mlflow_client.log_artifacts(parent_run_id, folder)
    mlflow_client.log_table(
        parent_run_id, table.drop(columns="error").fillna(""), "leaderboard.json"
    )
    mlflow_client.set_terminated(parent_run_id, "FINISHED" if not finished.empty else "FAILED")


def fail_parent_run(uri: str, parent_run_id: str, error: str) -> None:
    """The driver itself failed after the parent run was created: never left RUNNING."""
    _, _, RunTag = _entities()
    mlflow_client = client(uri)
    mlflow_client.log_batch(
        parent_run_id, tags=[RunTag(STATUS, FAILED), RunTag("avfusion.error", error[:_MAX_TAG])]
    )
    mlflow_client.set_terminated(parent_run_id, "FAILED")


def set_driver(uri: str, parent_run_id: str, holder: str) -> None:
    """Which driver holds the search (``search.lock``): who to wait for, shown in the UI."""
    client(uri).set_tag(parent_run_id, DRIVER, holder)


def _optuna_plots(study: Any, folder: Path) -> None:
    """Parameter importances and parallel coordinates (PNG) from the finished trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return
    for name, draw in (
        ("param_importances.png", optuna_plots.plot_param_importances),
        ("parallel_coordinate.png", optuna_plots.plot_parallel_coordinate),
    ):
        try:
            with warnings.catch_warnings():  # Optuna's experimental and axis-limit warnings
                warnings.simplefilter("ignore")
                axes = draw(study)
        except (ValueError, RuntimeError) as exc:  # e.g. a single distinct value per param
            Path(folder, name.replace(".png", ".txt")).write_text(f"not drawn: {exc}\n")
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
        figure.set_size_inches(10, 6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure.tight_layout()
            figure.savefig(folder / name, dpi=100)
        plt.close(figure)
