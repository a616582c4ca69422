"""The driver's bookkeeping of trial runs in MLflow: finding a search's trial runs, marking those
Tune stopped or whose worker died, and the clean-up around a resume and a retried trial, so that
every trial Tune ran ends with exactly one run in a final status.

A stopped trial's thread never returns to log its status, so the driver writes it: from the Tune
callbacks (``search.callbacks``) as trials end, and once more after ``Tuner.fit`` for trials the
end of the search stopped. Runs of a trial Tune starts again (a retry, a resume) are deleted rather
than left beside their rerun.
"""

from __future__ import annotations

from typing import Any

from avcore import results
from avcore.results import (
    EPOCHS_DONE,
    FAILED,
    FINISHED,
    INTERRUPTED,
    KIND,
    PARENT,
    RUNNING,
    STATUS,
    STOPPED_EARLY,
    TRIAL,
    TUNE_TRIAL_ID,
)
from avcore.tracking import MAX_TAG
from search.tracking import TrackingContext, client, entities

# MLflow's run status for our end states of a trial Tune stopped: ASHA's cut (or the search's time
# limit) is the search working as designed, FINISHED with a green tick; Ctrl+C left it unfinished.
_MLFLOW_STATUS = {STOPPED_EARLY: "FINISHED", INTERRUPTED: "KILLED"}


def trial_runs(uri: str, experiment_id: str, parent_run_id: str) -> list[Any]:
    """Every trial run of the search whose parent run is ``parent_run_id``."""
    return client(uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT}` = '{parent_run_id}' and tags.`{KIND}` = '{TRIAL}'",
        max_results=50000,
    )


def runs_of_trial(
    context: TrackingContext, trial_id: str, *, key: str = TUNE_TRIAL_ID
) -> list[Any]:
    """The runs a trial (``trial_id``: Tune's id, or with ``key=TRIAL_ID`` its number) already has
    in this search: more than none only when a resumed search starts a trial again that the
    interrupted driver had started (or even finished)."""
    return client(context.uri).search_runs(
        [context.experiment_id],
        filter_string=f"tags.`{PARENT}` = '{context.parent_run_id}' and tags.`{KIND}` = "
        f"'{TRIAL}' and tags.`{key}` = '{trial_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=100,
    )


def delete_runs(uri: str, run_ids: list[str]) -> None:
    mlflow_client = client(uri)
    for run_id in run_ids:
        mlflow_client.delete_run(run_id)


def mark_stopped(uri: str, run_id: str, epochs_done: int) -> None:
    """A trial Tune stopped before its last epoch: never a finished result (``STOPPED_EARLY``),
    yet no crash either, so FINISHED in MLflow (its UI shows KILLED as a failure)."""
    _, _, RunTag = entities()
    mlflow_client = client(uri)
    mlflow_client.log_batch(
        run_id, tags=[RunTag(STATUS, STOPPED_EARLY), RunTag(EPOCHS_DONE, str(epochs_done))]
    )
    mlflow_client.set_terminated(run_id, _MLFLOW_STATUS[STOPPED_EARLY])


def mark_failed_if_running(uri: str, run_id: str, error: str) -> None:
    """A trial whose worker died before it could record its own failure."""
    _, _, RunTag = entities()
    mlflow_client = client(uri)
    run = mlflow_client.get_run(run_id)
    if run.data.tags.get(STATUS) != RUNNING:
        return
    mlflow_client.log_batch(
        run_id, tags=[RunTag(STATUS, FAILED), RunTag(results.ERROR, error[:MAX_TAG])]
    )
    mlflow_client.set_terminated(run_id, "FAILED")


def end_stopped_trial_runs(
    uri: str, experiment_id: str, parent_run_id: str, status: str, reason: str
) -> int:
    """Trial runs still ``running`` once ``Tuner.fit`` has returned belong to trials Tune stopped
    as the search ended (its time limit, or Ctrl+C): ``status`` (stopped_early: truncated, never
    ranked, FINISHED in MLflow; interrupted: ``resume`` replaces them, KILLED in MLflow), the epochs
    they reached."""
    _, _, RunTag = entities()
    mlflow_client = client(uri)
    runs = trial_runs(uri, experiment_id, parent_run_id)
    stopped = [r for r in runs if r.data.tags.get(STATUS) == RUNNING]
    for run in stopped:
        epochs = len(mlflow_client.get_metric_history(run.info.run_id, "val_acc"))
        tags = [
            RunTag(STATUS, status),
            RunTag(EPOCHS_DONE, str(epochs)),
            RunTag(results.STOP_REASON, reason),
        ]
        mlflow_client.log_batch(run.info.run_id, tags=tags)
        mlflow_client.set_terminated(run.info.run_id, _MLFLOW_STATUS[status])
    return len(stopped)


def replace_trial_runs(context: TrackingContext, trial_id: str, reason: str) -> int:
    """A trial Tune retries (it raised, or its node died): its earlier attempt's run ends FAILED
    and is deleted, so the retry's run is the trial's only one (never counted twice)."""
    runs = [r for r in runs_of_trial(context, trial_id) if r.data.tags.get(STATUS) != FINISHED]
    for run in runs:
        mark_failed_if_running(context.uri, run.info.run_id, reason)
    delete_runs(context.uri, [r.info.run_id for r in runs])
    return len(runs)


def drop_interrupted_runs(uri: str, experiment_id: str, parent_run_id: str) -> int:
    """Before a resume: runs still ``running`` (the driver was killed) or ``interrupted`` (Ctrl+C)
    belong to trials Tune will start again from scratch, so they are deleted rather than left
    beside their rerun."""
    runs = trial_runs(uri, experiment_id, parent_run_id)
    interrupted = [r.info.run_id for r in runs if r.data.tags.get(STATUS) in (RUNNING, INTERRUPTED)]
    delete_runs(uri, interrupted)
    return len(interrupted)


def drop_unknown_trials(
    uri: str, experiment_id: str, parent_run_id: str, trial_ids: set[str]
) -> int:
    """After a resume: runs of trials (``trial_ids``: Tune's ids) the restored Tune state never
    knew (started after its last snapshot, then interrupted) are deleted; Tune sampled
    replacements for them, so keeping them would leave more trials in MLflow than the search ran."""
    runs = trial_runs(uri, experiment_id, parent_run_id)
    unknown = [r.info.run_id for r in runs if r.data.tags.get(TUNE_TRIAL_ID) not in trial_ids]
    delete_runs(uri, unknown)
    return len(unknown)
