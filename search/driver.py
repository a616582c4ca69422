"""The driver of a search: ``run_search`` and ``resume_search`` (Ray Tune's Tuner with Optuna TPE
and ASHA, every trial an MLflow run).

    from search.config import load_search_config
    from search.driver import run_search
    run_search(load_search_config("conf/search/demo.yaml"), num_cpus=2)

Order of work, so that every mistake surfaces before the first trial: the search's lock, tracking
server reachable, stores present and pairing, Ray up, resources there, experiment and parent run
created (``_prepare``), then the Tuner fitted (``search.tuner``) and the search closed in MLflow
(``_finish``: the runs Tune stopped, the plots, the leaderboard, Optuna's view). The stores are
read once here and reach every trial through the object store.
"""

from __future__ import annotations

import os

from avcore import tracking as where
from avcore.results import FINISHED, INTERRUPTED, STOPPED_EARLY
from search import parent_run, trial_runs, ui_link
from search.cluster import check_resources, check_tracking_reach, init_ray
from search.config import SearchConfig
from search.errors import SearchError, TrackingError
from search.leaderboard import leaderboard
from search.lock import SearchLock
from search.outcome import SearchOutcome
from search.plot_actor import ensure_plots
from search.start_points import left_out
from search.storage import experiment_path, load_search, save_search
from search.stores import Stores, classes_of, data_record, load_stores, oracle_table
from search.study import check_new_study, load_study, tell_held_back, with_storage
from search.tracking import git_commit
from search.tuner import fit, new_tuner, restore_tuner, trial_context


def run_search(config: SearchConfig, *, num_cpus: int | None = None) -> SearchOutcome:
    """A new search named ``config.name``; refuses a name whose Tune state already exists, or
    that another driver holds (``search.lock``)."""
    from ray import tune

    with SearchLock(config.storage_path, config.name) as holder:
        path = experiment_path(config.storage_path, config.name)
        if tune.Tuner.can_restore(path):
            raise SearchError(
                f"search {config.name!r} already exists at {path}; continue it with "
                f"`python -m search resume {config.name}` or choose another name (--set name=...)"
            )
        config = with_storage(config)  # saved with the search: resume opens the same study
        uri, stores, experiment_id = _prepare(config, num_cpus)
        check_new_study(config)
        parent = parent_run.start_parent_run(uri, experiment_id, config, git_commit())
        with parent_run.failing_parent(uri, parent):
            parent_run.set_driver(uri, parent, holder)
            save_search(config, parent, uri)
            parent_run.log_data(uri, parent, data_record(stores))
            ui_link.ensure_view(uri, experiment_id, parent)
            print(
                f"search {config.name}: MLflow {uri}, experiment {config.experiment!r}, "
                f"parent run {parent}; Optuna study {config.name!r} in "
                f"{config.tracking.optuna_storage}\n{ui_link.ui_hint(uri, experiment_id, parent)}"
            )
            for why in left_out(config).values():
                print(f"search {config.name}: start point left out: {why}")
            budget = config.budget
            if config.mode == "reproducible" and budget.max_concurrent > budget.window:
                print(
                    f"search {config.name}: reproducible: at most budget.window={budget.window} "
                    f"trials at once, not max_concurrent={budget.max_concurrent}; raise "
                    "budget.window (another search) or set mode=async"
                )
            context = trial_context(config, uri, experiment_id, parent)
            tuner = new_tuner(config, stores, context)
            _, interrupted = fit(tuner, config, uri, classes_of(stores))
            return _finish(config, uri, experiment_id, parent, stores, interrupted)


def resume_search(
    name: str, *, storage_path: str = "ray_results", num_cpus: int | None = None
) -> SearchOutcome:
    """Continue an interrupted search in the same MLflow parent run. Tune restarts every trial
    its last snapshot had not seen end, and every trial that failed (a lost node, ...); such a
    trial whose run is complete in MLflow hands that result back instead of training again
    (``search.trial``), any other earlier run of it is deleted, and so are the runs of trials the
    snapshot never knew. Every trial Tune ran has then exactly one run."""
    from ray import tune

    with SearchLock(storage_path, name) as holder:
        path = experiment_path(storage_path, name)
        saved = load_search(name, storage_path)
        if saved is None or not tune.Tuner.can_restore(path):
            raise SearchError(f"no search {name!r} to resume at {path} (see --storage)")
        config, parent, recorded_uri = saved
        # Where the search was recorded, unless MLFLOW_TRACKING_URI says otherwise (MLflow's rule).
        uri = os.environ.get("MLFLOW_TRACKING_URI") or recorded_uri or config.tracking_uri
        tracking = config.tracking.model_copy(update={"uri": uri})
        config = config.model_copy(update={"tracking": tracking})
        uri, stores, experiment_id = _prepare(config, num_cpus)
        parent_run.check_parent_run(uri, experiment_id, parent, name)
        ui_link.ensure_view(uri, experiment_id, parent)
        dropped = trial_runs.drop_interrupted_runs(uri, experiment_id, parent)
        print(
            f"search {name}: resuming from {path} in MLflow {uri}, parent run {parent}"
            + (f" ({dropped} interrupted trial runs replaced)" if dropped else "")
        )
        parent_run.reopen_parent_run(uri, parent)
        with parent_run.failing_parent(uri, parent):
            parent_run.set_driver(uri, parent, holder)
            context = trial_context(config, uri, experiment_id, parent, resumed=True)
            tuner = restore_tuner(config, stores, context)
            trial_ids, interrupted = fit(tuner, config, uri, classes_of(stores))
            unknown = trial_runs.drop_unknown_trials(uri, experiment_id, parent, trial_ids)
            if unknown:
                print(
                    f"search {name}: {unknown} runs of trials lost with the interrupted driver deleted"
                )
            return _finish(config, uri, experiment_id, parent, stores, interrupted)


def _prepare(config: SearchConfig, num_cpus: int | None) -> tuple[str, Stores, str]:
    """Everything that can fail before a trial: tracking, stores, Ray, resources, experiment."""
    uri = where.open_uri(config.tracking_uri, error=TrackingError)
    stores = load_stores(config)
    init_ray(num_cpus)
    check_resources(config)
    check_tracking_reach(uri)
    experiment_id = parent_run.ensure_experiment(uri, config.experiment)
    return uri, stores, experiment_id


def _finish(
    config: SearchConfig,
    uri: str,
    experiment_id: str,
    parent: str,
    stores: Stores,
    interrupted: bool,
) -> SearchOutcome:
    """Close the search in MLflow once ``fit`` returned: the trial runs Tune stopped as it ended,
    the finished trials' plots, and the parent run (finished with the leaderboard and Optuna's
    plots, or interrupted for ``resume``)."""
    # Trials Tune stopped as the search ended: Ctrl+C (resume replaces them) or the time limit.
    status, reason = (
        (INTERRUPTED, "interrupted (Ctrl+C)")
        if interrupted
        else (STOPPED_EARLY, "search time limit")
    )
    stopped = trial_runs.end_stopped_trial_runs(uri, experiment_id, parent, status, reason)
    if stopped and not interrupted:
        limit = config.budget.time_limit_s
        print(
            f"search {config.name}: ended"
            + (f" at its time limit of {limit:g} s" if limit else "")
            + f" with {stopped} trials still running; they count as stopped early"
        )
    table = leaderboard(uri, experiment_id, parent)
    finished = table.loc[table["status"] == FINISHED, "run_id"].tolist()
    classes = classes_of(stores)
    if interrupted:
        # Not a finished search: no best trial, no Optuna plots; `resume` reopens the parent run.
        # The finished trials' PNGs still land if the plotters outlived the Ctrl+C (else resume
        # draws them).
        try:
            ensure_plots(config.name, uri, classes, finished, timeout=60)
        except Exception as exc:  # noqa: BLE001 - the interrupt must still be recorded
            print(f"search {config.name}: some trial plots are left for resume ({exc!r:.80})")
        parent_run.interrupt_parent_run(uri, parent)
    else:
        ensure_plots(config.name, uri, classes, finished)
        tell_held_back(config, table)
        parent_run.finish_parent_run(uri, parent, table, load_study(config))
    oracle = oracle_table(
        config.stores.root,
        config.stores.visual_feature,
        config.stores.audio_feature,
        config.stores.fold,
    )
    return SearchOutcome(
        config.name,
        uri,
        experiment_id,
        parent,
        table,
        oracle,
        interrupted=interrupted,
        storage_path=config.storage_path,
    )
