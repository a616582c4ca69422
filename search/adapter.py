"""Where search meets Optuna and Ray beyond their everyday calls: the searcher Tune drives (Optuna
TPE over ``search.space``, told which trials ASHA cut short; in ``mode: reproducible`` behind
``search.ordered``'s limiter) and the only Ray and Optuna internals the search uses, each with why
no public API does the job.

Everything else in ``search`` uses Ray Tune, Optuna and MLflow through their public APIs. Should a
Ray or Optuna release move what is used here, this file is the one to change; ``.ci/run`` runs the
search tests against the lowest versions pyproject allows, too.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from search.config import SearchConfig
from search.ordered import TrialOrderLimiter, seeded_sampler
from search.space import SpaceSampler
from search.start_points import start_points
from search.trial_fields import TRIAL_NUMBER, trial_defaults

METRIC, MODE = "val_acc", "max"
TUNE_TRIAL_ID = "tune_trial_id"  # the Optuna trial's user attribute naming its Tune trial
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch between a cluster and one host


class PruningAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna a trial stopped by ASHA was pruned (its intermediate values
    stay known to TPE) instead of completing it with a truncated accuracy, names each Optuna
    trial's Tune trial, and keeps a persistent study consistent across a resume.

    OptunaSearch records a trial that ends without its metric and without an error as PRUNED
    (its public ``on_trial_complete``); a trial that did not reach its last epoch (no
    ``finished=1`` in its result) is handed on that way.

    Each config it suggests also carries the Optuna trial's number (``TRIAL_NUMBER``): the one id
    a person sees for the trial everywhere. Read from ``_ot_trials`` (OptunaSearch's map of Tune
    trial id to Optuna trial, internal): ``suggest`` returns the sampled params alone."""

    # Trials a resume found finished in the study but running in Tune's snapshot (``restore``).
    _settled: frozenset[str] = frozenset()
    # mode reproducible: the trials a killed driver proposed after Tune's last snapshot are
    # proposed again, unchanged, under their numbers (``restore``); else they end FAIL.
    reuse_lost: bool = False
    # (storage id, finished, last epoch reported) of each, in number order
    _lost: tuple[tuple[int, bool, int], ...] = ()

    def suggest(self, trial_id: str) -> dict | None:
        if self._lost and trial_id not in self._ot_trials:
            self._propose_lost(trial_id)
        config = super().suggest(trial_id)
        if isinstance(config, dict) and trial_id in self._ot_trials:
            optuna_trial = self._ot_trials[trial_id]
            config[TRIAL_NUMBER] = optuna_trial.number
            if trial_id not in self._settled:  # Tune's id beside Optuna's, in optuna-dashboard
                optuna_trial.set_user_attr(TUNE_TRIAL_ID, trial_id)
        return config

    def _propose_lost(self, trial_id: str) -> None:
        """The next lost trial for Tune's ``trial_id``; ``OptunaSearch.suggest`` then reads its
        params back (Optuna returns a parameter a trial already has). Internal: Optuna's
        ask-and-tell only creates trials, so the trial is opened by its storage id
        (``optuna.Trial(study, id)``) into ``_ot_trials``, OptunaSearch's own map."""
        from optuna.trial import Trial

        (storage_id, finished, reported), self._lost = self._lost[0], self._lost[1:]
        self._ot_trials[trial_id] = Trial(self._ot_study, storage_id)
        self.__dict__.setdefault("_reported_steps", {})[trial_id] = reported  # (on_trial_result)
        if finished:  # told before the driver died: its rerun reports nothing more
            self._settled = self._settled | {trial_id}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._settled:
            return
        # A trial Tune starts again (a resume, a retry) reports its epochs from 1 once more; Optuna
        # keeps the first value of a step and warns about every repeat, so repeats stay here.
        step = result.get("training_iteration", 0)
        reported = self.__dict__.setdefault("_reported_steps", {})  # absent from older snapshots
        if step <= reported.get(trial_id, 0):
            return
        reported[trial_id] = step
        super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._settled:
            return
        if result and self.metric in result:
            # Tune hands the result a trial ended on (ASHA's cut, the last epoch) to this method
            # alone: its epoch joins the trial's curve in the study.
            self.on_trial_result(trial_id, result)
        if not error and result and result.get("finished") != 1:
            result = {k: v for k, v in result.items() if k != self.metric}
        super().on_trial_complete(trial_id, result, error)

    def restore(self, checkpoint_path: str) -> None:
        """Back to Tune's last snapshot, reconciled with the study, which lives on in its database
        and may be newer than the snapshot:

        - trials the study holds that the snapshot never knew (asked for after it, by the driver
          that died) end FAIL instead of running forever; with ``reuse_lost`` they are proposed
          again instead, in number order, before any new trial (a finished one as settled);
        - trials the snapshot had as running but that ended in the study after it are settled:
          Tune restarts them (their runs hand the result back) and nothing more is reported to
          or told of them, since Optuna refuses to update a finished trial. The study keeps the
          outcome they ended with.

        Internal: ``_ot_trials`` (Tune's trial id -> Optuna trial) is OptunaSearch's own state."""
        from optuna.trial import TrialState

        super().restore(checkpoint_path)
        trials = self._ot_study.get_trials(deepcopy=False)
        finished = {trial.number for trial in trials if trial.state.is_finished()}
        self._settled = frozenset(
            trial_id for trial_id, trial in self._ot_trials.items() if trial.number in finished
        )
        # What the study holds may be newer than the snapshot's count of reported epochs.
        reported = self.__dict__.setdefault("_reported_steps", {})
        for trial_id, trial in self._ot_trials.items():
            steps = trials[trial.number].intermediate_values
            reported[trial_id] = max(reported.get(trial_id, 0), max(steps, default=0))
        known = {trial.number for trial in self._ot_trials.values()}
        lost = [t for t in trials if t.number not in known and t.state != TrialState.WAITING]
        if self.reuse_lost:  # FrozenTrial._trial_id: the storage id, internal (see _propose_lost)
            self._lost = tuple(
                (t._trial_id, t.state.is_finished(), max(t.intermediate_values, default=0))
                for t in lost
            )
            return
        for trial in lost:
            if trial.state == TrialState.RUNNING:
                self._ot_study.tell(trial.number, state=TrialState.FAIL)


def make_searcher(config: SearchConfig, *, storage: Any | None = None) -> ConcurrencyLimiter:
    """TPE (or random) over the search's space, at most ``budget.max_concurrent`` trials at once.
    ``storage``: an Optuna storage to keep the study in (the search's database,
    ``search.study.open_storage``; default: in memory, checkpointed by Tune with the experiment);
    its study is named after the search. ``mode: reproducible``: a sampler seeded per trial
    behind a ``TrialOrderLimiter`` (``search.ordered``)."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget, reproducible = config.budget, config.mode == "reproducible"
    # Trials proposed while others run: as many as the window (reproducible) or max_concurrent.
    in_flight = budget.window if reproducible else budget.max_concurrent
    if config.sampler == "random":
        sampler_class, options = optuna.samplers.RandomSampler, {}
    else:
        # group + multivariate: TPE models each conditional sub-space jointly; constant_liar keeps
        # concurrent trials from all proposing the same point.
        sampler_class = optuna.samplers.TPESampler
        options = dict(
            n_startup_trials=max(3, min(10, budget.num_trials // 4)),
            multivariate=True,
            group=True,
            constant_liar=in_flight > 1,
        )
    if reproducible:
        sampler = seeded_sampler(sampler_class, config.seed, **options)
    else:
        sampler = sampler_class(seed=config.seed, **options)
    searcher = PruningAwareOptunaSearch(
        space=SpaceSampler(config, trial_defaults()),
        metric=METRIC,
        mode=MODE,
        sampler=sampler,
        study_name=config.name,
        storage=storage,
        # run first; enqueued as the study is created (a resume restores the searcher instead)
        points_to_evaluate=start_points(config) or None,
    )
    if not reproducible:
        return ConcurrencyLimiter(searcher, max_concurrent=budget.max_concurrent)
    searcher.reuse_lost = True
    return TrialOrderLimiter(
        searcher,
        max_concurrent=budget.max_concurrent,
        window=budget.window,
        num_trials=budget.num_trials,
    )


def cluster_started_here() -> str | None:
    """The address of a cluster ``ray start`` brought up on this machine (``ray submit`` runs the
    driver on the head without ``RAY_ADDRESS``), else None.

    Internal because Ray offers no public lookup: ``ray.init(address="auto")`` finds the same
    cluster but raises when there is none, which cannot be told apart from a cluster that is
    there and failing; this is the function ``ray.init`` itself consults."""
    from ray._private import services

    return services.find_bootstrap_address(None)


def serve_this_host_only() -> None:
    """A Ray started here serves this machine only. Ray turns a loopback ``_node_ip_address`` into
    the host's outward IP (and its servers then listen on every interface) unless it is told it
    is no cluster: with that, the node IP is 127.0.0.1 and Ray's gRPC and agent servers bind it.

    Internal because the switch is an environment variable Ray reads once, when ``ray`` is first
    imported: the variable reaches the processes Ray spawns, the constant is what this process
    (which has imported Ray already) reads at ``ray.init``."""
    from ray._private import ray_constants

    os.environ[LOCAL_ONLY_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
