"""What the driver does as Tune reports trials ending: ``RunStatusCallback`` writes the MLflow
status a stopped or crashed trial could not write itself and queues a finished trial's plots;
``ProgressCallback`` prints one line per trial and keeps a progress bar. ``failure_cause`` turns
the error Tune saved for a trial into the one line both show.

Tune pickles its callbacks with every experiment snapshot and ``Tuner.restore`` brings them back,
so they hold only settings and counts, never a handle (bar, actor) across a snapshot.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ray.tune import Callback

from avcore.results import FAILED, FINISHED, STOPPED_EARLY
from search import plot_actor, trial_runs
from search.config import SearchConfig
from search.tracking import TrackingContext
from search.trial_fields import trial_number_text
from trainables.config import trial_label

# The last "package.SomeError: message" line of a traceback: the innermost cause.
_CAUSE = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Exit|Died\w*))(?:\([\w.]+\))?: (.+)$")


def failure_cause(trial) -> str:
    """One line saying why a trial failed, from the error Tune saved for it."""
    # The trial's own error.txt first: the copy in the storage path is synced later, so right
    # after the failure it may not be there yet.
    local = trial.error_file
    text = Path(local).read_text() if local and Path(local).is_file() else trial.get_error() or ""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    for line in reversed(lines):
        match = _CAUSE.match(line)
        if match:
            return f"{match[1]}: {match[2]}"[:300]
    return (lines[-1] if lines else "unknown error")[:300]


class RunStatusCallback(Callback):
    """Marks the MLflow runs of trials Tune stopped (their threads never get to) and queues the
    plots of finished ones."""

    def __init__(self, search: str, context: TrackingContext, classes: list[str]) -> None:
        self.search, self.context, self.classes = search, context, classes
        self.plotter = None

    def __getstate__(self):  # an actor handle is no experiment state
        return {**self.__dict__, "plotter": None}

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        run_id = result.get("mlflow_run_id")
        if not run_id:
            return
        if result.get("replayed"):
            return  # its run was complete before the resume; ensure_plots covers its PNGs
        if result.get("finished") == 1:
            if self.plotter is None:
                self.plotter = plot_actor.plot_queue(self.search, self.context.uri, self.classes)
            self.plotter.plot(run_id)
        else:
            trial_runs.mark_stopped(self.context.uri, run_id, int(result.get("epoch", 0)))

    def on_trial_recover(self, iteration, trials, trial, **info):
        trial_runs.replace_trial_runs(
            self.context, trial.trial_id, f"retried: {failure_cause(trial)}"
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        run_id = (trial.last_result or {}).get("mlflow_run_id")
        if run_id:
            trial_runs.mark_failed_if_running(
                self.context.uri,
                run_id,
                f"trial #{trial_number_text(trial.config, trial.trial_id)} errored: "
                f"{failure_cause(trial)}",
            )


class ProgressCallback(Callback):
    """One line per trial as it ends, and a bar: done / running / pending, best val_acc."""

    def __init__(self, config: SearchConfig) -> None:
        self.name, self.trials, self.epochs = (
            config.name,
            config.budget.num_trials,
            config.budget.epochs,
        )
        self.bar = None
        self.best: float | None = None
        self.done = 0

    def __getstate__(self):  # Tune pickles callbacks with the experiment; a bar is not state
        return {**self.__dict__, "bar": None}

    # Saved with every experiment snapshot, so a resumed search counts on from there.
    def get_state(self) -> dict:
        return {"done": self.done, "best": self.best}

    def set_state(self, state: dict) -> None:
        self.done, self.best = state["done"], state["best"]

    def setup(self, **info):
        from tqdm import tqdm

        self.bar = tqdm(
            total=self.trials, desc=f"search {self.name}", unit="trial", file=sys.stdout
        )
        self.bar.update(self.done)

    def _refresh(self, trials, ended=None):
        running = sum(t.status == "RUNNING" and t is not ended for t in trials)
        pending = max(0, self.trials - self.done - running)
        best = "-" if self.best is None else f"{self.best:.4f}"
        self.bar.set_postfix_str(f"running {running}, pending {pending}, best val_acc {best}")

    def _ended(self, trials, trial, status: str, cause: str = ""):
        result = trial.last_result or {}
        acc = result.get("val_acc")
        if status == FINISHED and acc is not None and (self.best is None or acc > self.best):
            self.best = acc
        self.done += 1
        self.bar.write(
            f"trial #{trial_number_text(trial.config, trial.trial_id)} {status:<13} epochs "
            f"{result.get('epoch', 0)}/{self.epochs} val_acc {'-' if acc is None else f'{acc:.4f}'}"
            f"  {trial_label(trial.config)}" + (f"  failed: {cause}" if cause else "")
        )
        self.bar.update(1)
        self._refresh(trials, ended=trial)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._refresh(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        finished = (trial.last_result or {}).get("finished") == 1
        self._ended(trials, trial, FINISHED if finished else STOPPED_EARLY)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trials, trial, FAILED, failure_cause(trial))

    def on_experiment_end(self, trials, **info):
        if self.bar is not None:
            self.bar.close()
