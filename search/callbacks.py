"""What the driver does as Tune reports trials ending: ``RunStatusCallback`` writes the MLflow
status a stopped or crashed trial could not write itself and queues a finished trial's plots
(what the driver prints is ``search.progress``'s). ``failure_cause`` turns the error Tune saved
for a trial into the one line the run and the driver's output show.

Tune pickles its callbacks with every experiment snapshot and ``Tuner.restore`` brings them back,
so they hold only settings and counts, never a handle (bar, actor) across a snapshot.
"""

from __future__ import annotations

import re
from pathlib import Path

from ray.tune import Callback

from search import plot_actor, trial_runs
from search.tracking import TrackingContext
from search.trial_fields import trial_number_text

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
