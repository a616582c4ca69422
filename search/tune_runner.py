"""The driver of a search: Ray Tune's Tuner with OptunaSearch (TPE, define-by-run) and ASHA.

    from search.config import load_search_config
    from search.tune_runner import run_search
    run_search(load_search_config("conf/search/demo.yaml"), num_cpus=2)

Order of work, so that every mistake surfaces before the first trial: tracking server reachable,
stores present and pairing, Ray up, resources there (a GPU request on a cluster without GPUs fails
here instead of pending forever), experiment and parent run created, then ``Tuner.fit``. The stores
are read once here and reach every trial through the object store (``tune.with_parameters``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import sys
import threading
import urllib.parse
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import feature_store
from avcore import tracking as where
from feature_store.store import Store
from search import plots, tracking, watchdog
from search.config import SearchConfig, config_from_dict
from search.errors import ClusterError, SearchError, TrackingError
from search.lock import SearchLock
from search.space import SpaceSampler, trial_defaults
from search.trial import TrialContext, run_trial

CONFIG_FILE = "avfusion_search.yaml"
LOOPBACK = "127.0.0.1"
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch between a cluster and one host
# Tune's CSV/JSON/TensorBoard loggers cost time on every result; MLflow is the record.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@dataclass
class SearchOutcome:
    """What a finished (or resumed) search leaves: where it is recorded and its leaderboard."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    leaderboard: Any
    oracle: dict[tuple[str, str], float]
    # Stopped by Ctrl+C (SIGINT): Tune saved its state, the parent run is KILLED, `resume` goes on.
    interrupted: bool = False
    storage_path: str = "ray_results"  # where Tune keeps the search's state (for `resume`)


# -- stores ---------------------------------------------------------------------------------------
def load_stores(config: SearchConfig) -> dict[str, dict[str, Store]]:
    """Every variant opened, every visual × audio pair checked, features read into memory."""
    stores: dict[str, dict[str, Store]] = {"visual": {}, "audio": {}}
    for modality in stores:
        for variant in getattr(config.stores, f"{modality}_feature"):
            store = feature_store.open_store(config.stores.path(modality, variant))
            if config.stores.validate_deep:
                store.validate_deep()
            if store.modality != modality:
                raise SearchError(
                    f"{store.path}: is a {store.modality} store, listed as {modality}"
                )
            stores[modality][variant] = store
    for visual in stores["visual"].values():
        for audio in stores["audio"].values():
            feature_store.pair(visual, audio)  # PairError names the first clip that differs
    return {m: {v: s.load() for v, s in by_variant.items()} for m, by_variant in stores.items()}


def oracle_table(root: Path, visual: list[str], audio: list[str]) -> dict[tuple[str, str], float]:
    """Planted stores know their exact best val accuracy per visual × audio pair."""
    table = {}
    for variant in visual:
        try:
            meta = feature_store.open_store(root / "visual" / variant).meta
        except feature_store.StoreError:
            continue
        paired = (meta.get("planted") or {}).get("oracle", {}).get("paired", {})
        for other in audio:
            if other in paired:
                table[(variant, other)] = float(paired[other]["val"])
    return table


# -- Ray ------------------------------------------------------------------------------------------
def init_ray(num_cpus: int | None = None) -> None:
    """Join the cluster a submitted job runs in (``RAY_ADDRESS``), else start a local Ray bound to
    127.0.0.1 (no dashboard): nothing of it listens beyond this machine."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or _started_here()
    if address:
        check_ray_address(address)
        options: dict[str, Any] = {}
    else:
        _local_only()
        options = {"num_cpus": num_cpus, "include_dashboard": False, "_node_ip_address": LOOPBACK}
    try:
        ray.init(log_to_driver=True, logging_level="WARNING", **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
        raise ClusterError(
            f"cannot join the Ray cluster at RAY_ADDRESS={address}: {first}"
        ) from None
    if not address:
        watchdog.start()  # ends the local Ray's processes should this driver be SIGKILLed


def _started_here() -> str | None:
    """The cluster ``ray start`` brought up on this machine (``ray submit`` runs the driver on the
    head without ``RAY_ADDRESS``): ``ray.init()`` joins it, as Ray itself would."""
    from ray._private import services

    return services.find_bootstrap_address(None)


def _local_only() -> None:
    """A Ray started here serves this machine only. Ray turns a loopback ``_node_ip_address`` into
    the host's outward IP (and its servers then listen on every interface) unless it is told it is
    no cluster: with that, the node IP is 127.0.0.1 and Ray's gRPC and agent servers bind it. The
    variable reaches the processes Ray spawns; the constant is read by this one at init time."""
    from ray._private import ray_constants

    os.environ[LOCAL_ONLY_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Something answers at ``RAY_ADDRESS`` (``host:port`` or a dashboard URL), within seconds:
    Ray itself would wait minutes for a head that is not there."""
    if address == "auto" or address.startswith("ray://"):
        return
    target = urllib.parse.urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = target.hostname, target.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ClusterError(f"RAY_ADDRESS={address}: expected HOST:PORT of a Ray head (or auto)")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(
            f"RAY_ADDRESS={address}: no Ray head answers at {host}:{port} "
            f"({exc.strerror or exc}); start one (`ray start --head`) or unset RAY_ADDRESS"
        ) from None


def check_resources(config: SearchConfig) -> None:
    """Some alive node must fit one trial, or Tune would leave it pending forever."""
    import ray

    want = {"CPU": config.resources.cpus, "GPU": config.resources.gpu}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(k, 0) >= v for k, v in want.items()) for node in nodes):
        return
    total_gpus = sum(n.get("GPU", 0) for n in nodes)
    if config.resources.gpu > 0 and total_gpus < config.resources.gpu:
        raise ClusterError(
            f"resources.gpu={config.resources.gpu} but the Ray cluster has "
            f"{total_gpus if total_gpus else 'no'} GPU{'' if total_gpus == 1 else 's'}; "
            "run with --set resources.gpu=0 or start GPU workers (conf/cluster/gpu.yaml)"
        )
    biggest = max((n.get("CPU", 0) for n in nodes), default=0)
    raise ClusterError(
        f"resources.cpus={config.resources.cpus} but the largest Ray node has {biggest:g} CPUs; "
        "lower resources.cpus"
    )


# -- Optuna, told which trials were cut short ---------------------------------------------------
def _optuna_search_class():
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    class PruningAwareOptunaSearch(OptunaSearch):
        """OptunaSearch that tells Optuna a trial stopped by ASHA was pruned (its intermediate
        values stay known to TPE) instead of completing it with a truncated accuracy."""

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
            if (
                error
                or not result
                or result.get("finished") == 1
                or trial_id in self._completed_trials
            ):
                return super().on_trial_complete(trial_id, result, error)
            self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)

    return PruningAwareOptunaSearch


def make_searcher(config: SearchConfig):
    import optuna
    from ray.tune.search import ConcurrencyLimiter

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if config.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=config.seed)
    else:
        # group + multivariate: TPE models each conditional sub-space jointly; constant_liar keeps
        # concurrent trials from all proposing the same point.
        sampler = optuna.samplers.TPESampler(
            seed=config.seed,
            n_startup_trials=max(3, min(10, config.budget.num_trials // 4)),
            multivariate=True,
            group=True,
            constant_liar=config.budget.max_concurrent > 1,
        )
    searcher = _optuna_search_class()(
        space=SpaceSampler(config, trial_defaults()), metric="val_acc", mode="max", sampler=sampler
    )
    return ConcurrencyLimiter(searcher, max_concurrent=config.budget.max_concurrent)


# -- callbacks ------------------------------------------------------------------------------------
def _callbacks(config: SearchConfig, context: TrialContext, classes: list[str]):
    uri = context.tracking.uri

    from ray.tune import Callback

    class RunStatusCallback(Callback):
        """Marks the MLflow runs of trials Tune stopped (their threads never get to) and queues
        the plots of finished ones."""

        def __init__(self) -> None:
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
                    self.plotter = plots.plot_queue(config.name, uri, classes)
                self.plotter.plot(run_id)
            else:
                tracking.mark_stopped(uri, run_id, int(result.get("epoch", 0)))

        def on_trial_recover(self, iteration, trials, trial, **info):
            tracking.replace_trial_runs(
                context.tracking, trial.trial_id, f"retried: {failure_cause(trial)}"
            )

        def on_trial_error(self, iteration, trials, trial, **info):
            run_id = (trial.last_result or {}).get("mlflow_run_id")
            if run_id:
                tracking.mark_failed_if_running(
                    uri, run_id, f"trial {trial.trial_id} errored: {failure_cause(trial)}"
                )

    class ProgressCallback(Callback):
        """One line per trial as it ends, and a bar: done / running / pending, best val_acc."""

        def __init__(self) -> None:
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
                total=config.budget.num_trials,
                desc=f"search {config.name}",
                unit="trial",
                file=sys.stdout,
            )
            self.bar.update(self.done)

        def _refresh(self, trials, ended=None):
            running = sum(t.status == "RUNNING" and t is not ended for t in trials)
            pending = max(0, config.budget.num_trials - self.done - running)
            best = "-" if self.best is None else f"{self.best:.4f}"
            self.bar.set_postfix_str(f"running {running}, pending {pending}, best val_acc {best}")

        def _ended(self, trials, trial, status: str, cause: str = ""):
            result = trial.last_result or {}
            acc = result.get("val_acc")
            if (
                status == tracking.FINISHED
                and acc is not None
                and (self.best is None or acc > self.best)
            ):
                self.best = acc
            params = trial.config
            self.done += 1
            self.bar.write(
                f"trial {trial.trial_id} {status:<13} epochs {result.get('epoch', 0)}/{config.budget.epochs}"
                f" val_acc {'-' if acc is None else f'{acc:.4f}'}  {params.get('visual_feature')}+"
                f"{params.get('audio_feature')} {params.get('visual_attention')}/"
                f"{params.get('audio_attention')} {params.get('fusion')}"
                + (f"  failed: {cause}" if cause else "")
            )
            self.bar.update(1)
            self._refresh(trials, ended=trial)

        def on_trial_start(self, iteration, trials, trial, **info):
            self._refresh(trials)

        def on_trial_complete(self, iteration, trials, trial, **info):
            finished = (trial.last_result or {}).get("finished") == 1
            self._ended(trials, trial, tracking.FINISHED if finished else tracking.STOPPED_EARLY)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._ended(trials, trial, tracking.FAILED, failure_cause(trial))

        def on_experiment_end(self, trials, **info):
            if self.bar is not None:
                self.bar.close()

    return [RunStatusCallback(), ProgressCallback()]


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


# -- the search -----------------------------------------------------------------------------------
def experiment_path(storage_path: str, name: str) -> str:
    return f"{_storage(storage_path).rstrip('/')}/{name}"


def _storage(storage_path: str) -> str:
    return storage_path if "://" in storage_path else str(Path(storage_path).resolve())


def _write_text(uri: str, text: str) -> None:
    import pyarrow.fs

    filesystem, path = pyarrow.fs.FileSystem.from_uri(
        uri if "://" in uri else Path(uri).resolve().as_uri()
    )
    filesystem.create_dir(str(Path(path).parent), recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())


def _read_text(uri: str) -> str | None:
    import pyarrow.fs

    filesystem, path = pyarrow.fs.FileSystem.from_uri(
        uri if "://" in uri else Path(uri).resolve().as_uri()
    )
    if filesystem.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return None
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def _prepare(config: SearchConfig, num_cpus: int | None):
    """Everything that can fail before a trial: tracking, stores, Ray, resources, experiment."""
    uri = where.open_uri(config.tracking_uri, error=TrackingError)
    stores = load_stores(config)
    init_ray(num_cpus)
    check_resources(config)
    experiment_id = tracking.ensure_experiment(uri, config.experiment)
    return uri, stores, experiment_id


def _trainable(config: SearchConfig, stores, context: TrialContext):
    from ray import tune

    trainable = tune.with_parameters(run_trial, stores=stores, context=context)
    return tune.with_resources(
        trainable, {"cpu": config.resources.cpus, "gpu": config.resources.gpu}
    )


def _context(
    config: SearchConfig, uri: str, experiment_id: str, parent_run_id: str, resumed: bool = False
) -> TrialContext:
    return TrialContext(
        tracking=tracking.TrackingContext(
            uri=uri,
            experiment_id=experiment_id,
            parent_run_id=parent_run_id,
            search=config.name,
            git_commit=tracking.git_commit(),
        ),
        fixed=dict(config.trial),
        epochs=config.budget.epochs,
        seed=config.seed,
        resumed=resumed,
    )


def make_scheduler(config: SearchConfig):
    """ASHA on ``training_iteration`` (epochs); with ``budget.compare_within`` one ASHA per value
    of that sampled parameter, so a trial is only stopped for ranking low among its own kind."""
    from ray.tune.schedulers import ASHAScheduler

    from search.schedulers import GroupedASHA

    options = dict(
        time_attr="training_iteration",
        max_t=config.budget.epochs,
        grace_period=config.budget.grace_period,
        reduction_factor=config.budget.reduction_factor,
    )
    if config.budget.compare_within:
        return GroupedASHA(config.budget.compare_within, **options)
    return ASHAScheduler(**options)


def run_search(config: SearchConfig, *, num_cpus: int | None = None) -> SearchOutcome:
    """A new search named ``config.name``; refuses a name whose Tune state already exists, or
    that another driver holds (``search.lock``)."""
    with SearchLock(config.storage_path, config.name) as holder:
        return _run_search(config, num_cpus, holder)


def _run_search(config: SearchConfig, num_cpus: int | None, holder: str) -> SearchOutcome:
    from ray import tune

    path = experiment_path(config.storage_path, config.name)
    if tune.Tuner.can_restore(path):
        raise SearchError(
            f"search {config.name!r} already exists at {path}; continue it with "
            f"`python -m search resume {config.name}` or choose another name (--set name=...)"
        )
    uri, stores, experiment_id = _prepare(config, num_cpus)
    parent_run_id = tracking.start_parent_run(uri, experiment_id, config, tracking.git_commit())
    with _failing_parent(uri, parent_run_id):
        tracking.set_driver(uri, parent_run_id, holder)
        return _start_tuner(config, uri, stores, experiment_id, parent_run_id)


@contextlib.contextmanager
def _failing_parent(uri: str, parent_run_id: str):
    """Whatever stops the driver with an exception ends the parent run FAILED, never RUNNING
    (Ctrl+C is no failure: ``_fit`` records it as interrupted)."""
    try:
        yield
    except Exception as exc:
        tracking.fail_parent_run(uri, parent_run_id, f"driver failed: {exc!r}")
        raise


def _start_tuner(
    config: SearchConfig, uri: str, stores, experiment_id: str, parent_run_id: str
) -> SearchOutcome:
    from ray import tune

    path = experiment_path(config.storage_path, config.name)
    _write_text(
        f"{path}/{CONFIG_FILE}",
        yaml.safe_dump(
            {
                "config": config.model_dump(mode="json"),
                "parent_run_id": parent_run_id,
                "tracking_uri": uri,
            },
            sort_keys=False,
        ),
    )
    print(
        f"search {config.name}: MLflow {uri}, experiment {config.experiment!r}, parent run {parent_run_id}"
    )
    searcher = make_searcher(config)
    context = _context(config, uri, experiment_id, parent_run_id)
    tuner = tune.Tuner(
        _trainable(config, stores, context),
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            search_alg=searcher,
            scheduler=make_scheduler(config),
            num_samples=config.budget.num_trials,
            time_budget_s=config.budget.time_limit_s,
            # One actor runs trial after trial: torch, MLflow and the stores load once per actor.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=config.name,
            storage_path=_storage(config.storage_path),
            failure_config=tune.FailureConfig(max_failures=config.budget.max_failures),
            callbacks=_callbacks(config, context, _classes(stores)),
            verbose=0,
        ),
    )
    _, interrupted = _fit(tuner, config, uri, _classes(stores))
    return _finish(
        config, uri, experiment_id, parent_run_id, searcher, _classes(stores), interrupted
    )


def _quiet_result_logs() -> None:
    # Tune's result grid (also built on restore) looks for the per-trial JSON/CSV logs we
    # switched off; MLflow has it all.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # A failed trial's traceback (dozens of lines each) becomes our one line per trial
    # (``failure_cause``); the whole text stays in the trial's error.txt and its MLflow run.
    logging.getLogger("ray.tune.execution.tune_controller").setLevel(logging.CRITICAL)


def _interrupt_sentinel(signum, frame):  # a second Ctrl+C after Tune's own: stop at once
    raise KeyboardInterrupt


def _fit(tuner, config: SearchConfig, uri: str, classes: list[str]) -> tuple[set[str], bool]:
    """Run the Tuner; the ids of every trial it knows (finished, stopped, errored), and whether
    Ctrl+C (SIGINT) ended it before its budget did.

    Tune catches the first SIGINT itself: it saves the experiment state, stops the trials, puts
    back the handler it found and returns from ``fit`` as if the search were complete. So a
    sentinel handler goes in first; finding it back in place afterwards means Tune saw a SIGINT.
    """
    _quiet_result_logs()
    # The plotter's imports overlap the first trial's instead of delaying the first plots.
    plots.plot_queue(config.name, uri, classes).warm_up()
    watch = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _interrupt_sentinel) if watch else None
    try:
        results = tuner.fit()
        interrupted = watch and signal.getsignal(signal.SIGINT) is _interrupt_sentinel
    finally:
        if watch:
            signal.signal(signal.SIGINT, previous)
    return {trial.trial_id for trial in results._experiment_analysis.trials}, interrupted


def resume_search(
    name: str, *, storage_path: str = "ray_results", num_cpus: int | None = None
) -> SearchOutcome:
    """Continue an interrupted search in the same MLflow parent run. Tune restarts every trial
    its last snapshot had not seen end, and every trial that failed (a lost node, ...); such a trial whose run is complete in MLflow hands that
    result back instead of training again, any other earlier run of it is deleted, and so are the
    runs of trials the snapshot never knew. Every trial Tune ran has then exactly one run."""
    with SearchLock(storage_path, name) as holder:
        return _resume_search(name, storage_path, num_cpus, holder)


def _resume_search(
    name: str, storage_path: str, num_cpus: int | None, holder: str
) -> SearchOutcome:
    from ray import tune

    path = experiment_path(storage_path, name)
    saved = _read_text(f"{path}/{CONFIG_FILE}")
    if saved is None or not tune.Tuner.can_restore(path):
        raise SearchError(f"no search {name!r} to resume at {path} (see --storage)")
    state = yaml.safe_load(saved)
    config = config_from_dict(state["config"], source=f"{path}/{CONFIG_FILE}")
    parent_run_id = state["parent_run_id"]
    # Where the search was recorded, unless MLFLOW_TRACKING_URI says otherwise (MLflow's rule).
    uri = os.environ.get("MLFLOW_TRACKING_URI") or state.get("tracking_uri") or config.tracking_uri
    config = config.model_copy(update={"tracking": config.tracking.model_copy(update={"uri": uri})})
    uri, stores, experiment_id = _prepare(config, num_cpus)
    tracking.check_parent_run(uri, experiment_id, parent_run_id, name)
    dropped = tracking.drop_interrupted_runs(uri, experiment_id, parent_run_id)
    print(
        f"search {name}: resuming from {path} in MLflow {uri}, parent run {parent_run_id}"
        + (f" ({dropped} interrupted trial runs replaced)" if dropped else "")
    )
    tracking.reopen_parent_run(uri, parent_run_id)
    with _failing_parent(uri, parent_run_id):
        tracking.set_driver(uri, parent_run_id, holder)
        return _restore_tuner(config, uri, stores, experiment_id, parent_run_id, path)


def _restore_tuner(
    config: SearchConfig, uri: str, stores, experiment_id: str, parent_run_id: str, path: str
) -> SearchOutcome:
    from ray import tune

    name = config.name
    context = _context(config, uri, experiment_id, parent_run_id, resumed=True)
    _quiet_result_logs()
    tuner = tune.Tuner.restore(
        path,
        trainable=_trainable(config, stores, context),
        resume_unfinished=True,
        resume_errored=True,  # every trial of the budget without a finished or stopped run
    )
    trial_ids, interrupted = _fit(tuner, config, uri, _classes(stores))
    unknown = tracking.drop_unknown_trials(uri, experiment_id, parent_run_id, trial_ids)
    if unknown:
        print(f"search {name}: {unknown} runs of trials lost with the interrupted driver deleted")
    # Tune rebuilt the searcher from its checkpoint; the study for the plots lives there.
    searcher = tuner._local_tuner._tune_config.search_alg
    return _finish(
        config, uri, experiment_id, parent_run_id, searcher, _classes(stores), interrupted
    )


def _classes(stores) -> list[str]:
    return next(iter(stores["visual"].values())).classes


def _finish(
    config: SearchConfig,
    uri: str,
    experiment_id: str,
    parent_run_id: str,
    searcher,
    classes: list[str],
    interrupted: bool = False,
) -> SearchOutcome:
    # Trials Tune stopped as the search ended: Ctrl+C (resume replaces them) or the time limit.
    status, reason = (
        (tracking.INTERRUPTED, "interrupted (Ctrl+C)")
        if interrupted
        else (tracking.STOPPED_EARLY, "search time limit")
    )
    stopped = tracking.end_stopped_trial_runs(uri, experiment_id, parent_run_id, status, reason)
    if stopped and not interrupted:
        limit = config.budget.time_limit_s
        print(
            f"search {config.name}: ended"
            + (f" at its time limit of {limit:g} s" if limit else "")
            + f" with {stopped} trials still running; they count as stopped early"
        )
    table = tracking.leaderboard(uri, experiment_id, parent_run_id)
    finished = table.loc[table["status"] == tracking.FINISHED, "run_id"].tolist()
    if interrupted:
        # Not a finished search: no best trial, no Optuna plots; `resume` reopens the parent run.
        # The finished trials' PNGs still land if the plotters outlived the Ctrl+C (else resume
        # draws them).
        try:
            plots.ensure_plots(config.name, uri, classes, finished, timeout=60)
        except Exception as exc:  # noqa: BLE001 - the interrupt must still be recorded
            print(f"search {config.name}: some trial plots are left for resume ({exc!r:.80})")
        tracking.interrupt_parent_run(uri, parent_run_id)
    else:
        plots.ensure_plots(config.name, uri, classes, finished)
        study = getattr(getattr(searcher, "searcher", searcher), "_ot_study", None)
        tracking.finish_parent_run(uri, parent_run_id, table, study)
    oracle = oracle_table(
        config.stores.root, config.stores.visual_feature, config.stores.audio_feature
    )
    return SearchOutcome(
        config.name,
        uri,
        experiment_id,
        parent_run_id,
        table,
        oracle,
        interrupted=interrupted,
        storage_path=config.storage_path,
    )


def search_status(name: str, *, tracking_uri: str | None = None) -> SearchOutcome:
    """The leaderboard of the latest search ``name`` recorded in MLflow (no Ray needed)."""
    uri = where.open_uri(tracking_uri, error=TrackingError)
    with tracking.one_line_errors(uri):
        return _status(name, uri)


def _status(name: str, uri: str) -> SearchOutcome:
    experiment = tracking.client(uri).get_experiment_by_name(name)
    parent = tracking.find_parent_run(uri, experiment.experiment_id, name) if experiment else None
    if parent is None:
        raise SearchError(f"no search {name!r} recorded in MLflow at {uri}")
    params: Mapping[str, str] = tracking.client(uri).get_run(parent).data.params
    oracle = oracle_table(
        Path(params.get("stores.root", ".")),
        yaml.safe_load(params.get("stores.visual_feature", "[]")) or [],
        yaml.safe_load(params.get("stores.audio_feature", "[]")) or [],
    )
    table = tracking.leaderboard(uri, experiment.experiment_id, parent)
    return SearchOutcome(name, uri, experiment.experiment_id, parent, table, oracle)
