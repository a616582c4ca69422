"""Ray Tune's ``Tuner`` for a search, new or restored, and its ``fit``.

A new Tuner gets the trainable (``search.trial.run_trial`` with the stores and the tracking context
bound through ``tune.with_parameters``, asking the search's resources per trial), the searcher
(``search.adapter``), ASHA (``search.schedulers``) and the callbacks (``search.callbacks``); a
restored one gets them back from Tune's snapshot. ``fit`` returns the ids of every trial Tune knows
and whether Ctrl+C stopped it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from search.callbacks import RunStatusCallback
from search.config import SearchConfig
from search.plot_actor import plot_queue
from search.progress import ProgressCallback
from search.storage import experiment_path, storage_root
from search.stores import Stores, classes_of
from search.tracking import TrackingContext, git_commit
from search.trial import TrialContext, run_trial


def trial_context(
    config: SearchConfig, uri: str, experiment_id: str, parent_run_id: str, resumed: bool = False
) -> TrialContext:
    """What every trial of the search gets besides its sampled parameters and the stores."""
    return TrialContext(
        tracking=TrackingContext(uri, experiment_id, parent_run_id, config.name, git_commit()),
        fixed=dict(config.trial),
        epochs=config.budget.epochs,
        seed=config.seed,
        resumed=resumed,
        replay_curve=config.mode == "reproducible",
    )


def _trainable(config: SearchConfig, stores: Stores, context: TrialContext):
    from ray import tune

    trainable = tune.with_parameters(run_trial, stores=stores, context=context)
    return tune.with_resources(
        trainable, {"cpu": config.resources.cpus, "gpu": config.resources.gpu}
    )


def _quiet_tune() -> None:
    # Tune's CSV/JSON/TensorBoard loggers cost time on every result; MLflow is the record.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's result grid (also built on restore) looks for the per-trial JSON/CSV logs we
    # switched off; MLflow has it all.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # A failed trial's traceback (dozens of lines each) becomes our one line per trial
    # (``failure_cause``); the whole text stays in the trial's error.txt and its MLflow run.
    logging.getLogger("ray.tune.execution.tune_controller").setLevel(logging.CRITICAL)


def new_tuner(config: SearchConfig, stores: Stores, context: TrialContext):
    from ray import tune

    from search.adapter import METRIC, MODE, make_searcher
    from search.schedulers import make_scheduler
    from search.study import open_storage, storage_url
    from search.study_plots import StudyPlotsCallback

    _quiet_tune()
    run_status = RunStatusCallback(config.name, context.tracking, classes_of(stores))
    url = storage_url(config)
    plots = StudyPlotsCallback(
        config.name, url, context.tracking.uri, context.tracking.parent_run_id
    )
    return tune.Tuner(
        _trainable(config, stores, context),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=make_searcher(config, storage=open_storage(url)),
            scheduler=make_scheduler(config.budget, config.mode),
            num_samples=config.budget.num_trials,
            time_budget_s=config.budget.time_limit_s,
            # One actor runs trial after trial: torch, MLflow and the stores load once per actor.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=config.name,
            storage_path=storage_root(config.storage_path),
            failure_config=tune.FailureConfig(max_failures=config.budget.max_failures),
            callbacks=[run_status, ProgressCallback(config), plots],
            verbose=0,
        ),
    )


def restore_tuner(config: SearchConfig, stores: Stores, context: TrialContext):
    """The Tuner of an interrupted search, from Tune's last snapshot: it starts again every trial
    the snapshot had not seen end, and every trial that failed (a lost node, ...)."""
    from ray import tune

    _quiet_tune()
    return tune.Tuner.restore(
        experiment_path(config.storage_path, config.name),
        trainable=_trainable(config, stores, context),
        resume_unfinished=True,
        resume_errored=True,  # every trial of the budget without a finished or stopped run
    )


def _interrupt_sentinel(signum, frame):  # a second Ctrl+C after Tune's own: stop at once
    raise KeyboardInterrupt


def fit(tuner, config: SearchConfig, uri: str, classes: list[str]) -> tuple[set[str], bool]:
    """Run the Tuner; the ids of every trial it knows (finished, stopped, errored), and whether
    Ctrl+C (SIGINT) ended it before its budget did.

    Tune catches the first SIGINT itself: it saves the experiment state, stops the trials, puts
    back the handler it found and returns from ``fit`` as if the search were complete. So a
    sentinel handler goes in first; finding it back in place afterwards means Tune saw a SIGINT.
    """
    from ray.tune import ExperimentAnalysis

    # The plotter's imports overlap the first trial's instead of delaying the first plots.
    plot_queue(config.name, uri, classes).warm_up()
    watch = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _interrupt_sentinel) if watch else None
    try:
        tuner.fit()
        interrupted = watch and signal.getsignal(signal.SIGINT) is _interrupt_sentinel
    finally:
        if watch:
            signal.signal(signal.SIGINT, previous)
    # Every trial of the experiment's saved state, those that never reported a result included.
    known = ExperimentAnalysis(experiment_path(config.storage_path, config.name)).results
    return set(known), interrupted
