"""A reproducible search (``mode: reproducible``): what TPE and ASHA know when they decide is a
function of the trials' results, never of the order or the moment trials end.

Trials are numbered in the order they are proposed (Optuna's trial number, ``#n`` everywhere).
With ``budget.window`` = W:

1. Trial n is proposed only once trials 0 .. n-W have all ended, and the searcher has then been
   told exactly those, in number order; trials n-W+1 .. n-1 are still running for it (TPE's
   constant liar counts them as bad guesses), even where they have in fact ended: their results
   are held back until trial n+1 is proposed (``TrialOrderLimiter``). So whether 1, 2 or 4 trials
   run at once, the study TPE sees at trial n is the same, and so is its proposal.
2. The sampler proposing trial n is made afresh, seeded by (search seed, n)
   (``TrialSeededSampler``): its draws do not depend on how many draws came before, so a resumed
   search proposes what the uninterrupted one did.
3. ASHA judges trial n at a rung against the trials numbered n-W or lower that reached the rung
   (``search.schedulers.OrderedASHA``): those had all ended before n was proposed, so the set is
   complete whichever trial reports first. Their curves are kept here, with the searcher's state,
   which Tune snapshots (the scheduler's own state is not in Tune's snapshot).

At most W trials are ever in flight: ``max_concurrent`` above W is not reached. Training itself is
deterministic given the trial's seed (``trainables.device.deterministic``; every trial gets the
search's seed). Once the last trial is proposed, results are told as trials end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import optuna
from ray.tune.search import ConcurrencyLimiter, Searcher

from search.trial_fields import TRIAL_NUMBER

TIME_ATTR = "training_iteration"  # the epoch: Tune counts reports, and a trial reports each epoch


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number`` of a search seeded ``seed``."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler made afresh for each trial by ``make(seed=trial_seed(seed, number))``
    (TPE or random): what it draws for trial n depends on the study and on n, not on the draws
    before it. Picklable (Tune snapshots the searcher with its study and sampler)."""

    def __init__(self, make: Callable[..., Any], seed: int) -> None:
        self._make, self._seed = make, seed
        self._number: int | None = None
        self._sampler: Any = None

    def _for(self, trial: Any) -> Any:
        if trial.number != self._number:
            self._number = trial.number
            self._sampler = self._make(seed=trial_seed(self._seed, trial.number))
        return self._sampler

    def before_trial(self, study: Any, trial: Any) -> None:
        self._for(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        return self._for(trial).sample_independent(study, trial, name, distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        # Told of an earlier trial between two proposals: a sampler of its own, not the current.
        made = self._make(seed=trial_seed(self._seed, trial.number))
        made.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # seeds come from trial numbers; nothing to reseed
        pass


def seeded_sampler(sampler_class: type, seed: int, **options: Any) -> TrialSeededSampler:
    """``sampler_class(seed=..., **options)`` made per trial (``TrialSeededSampler``)."""
    return TrialSeededSampler(functools.partial(sampler_class, **options), seed)


class TrialOrderLimiter(ConcurrencyLimiter):
    """Tune's ``ConcurrencyLimiter`` that proposes trial n only once trials 0 .. n-W have ended and
    tells its searcher of them in number order, holding back the results of later trials until
    the next proposal (the module's point 1). Keeps every proposed trial's config and the curve of
    the searched metric per epoch, for ``OrderedASHA``; its state is Tune's snapshot of it."""

    def __init__(
        self, searcher: Searcher, *, max_concurrent: int, window: int, num_trials: int
    ) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.window, self.num_trials = window, num_trials
        self._next = 0  # the number the next proposal gets
        self._told = 0  # every trial numbered below it has been told to the searcher
        self._number: dict[str, int] = {}  # Tune trial id -> number, of the trials running
        self._ended: dict[int, tuple[str, dict | None, bool]] = {}  # held back: id, result, error
        self.configs: dict[int, dict[str, Any]] = {}
        self.curves: dict[int, dict[int, float]] = {}  # number -> epoch -> metric

    def suggest(self, trial_id: str) -> dict | None:
        if len(self.live_trials) >= self.max_concurrent:
            return None
        self._tell_ready()
        if self._told <= self._next - self.window:
            return None  # trial n-W is still running: its result is part of what n is proposed on
        config = self.searcher.suggest(trial_id)
        if not isinstance(config, dict):
            return config
        number = config[TRIAL_NUMBER]
        assert number == self._next, f"Optuna proposed trial {number}, expected {self._next}"
        self.live_trials.add(trial_id)
        self._number[trial_id] = number
        self.configs[number] = dict(config)
        self._next += 1
        self._tell_ready()  # the last proposal: nothing is held back any longer
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._record(trial_id, result)
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id not in self.live_trials:
            return
        self._record(trial_id, result)
        self.live_trials.remove(trial_id)
        self._ended[self._number.pop(trial_id)] = (trial_id, result, error)
        self._tell_ready()

    def _record(self, trial_id: str, result: Mapping[str, Any] | None) -> None:
        number = self._number.get(trial_id)
        if number is None or not result or self.metric not in result or TIME_ATTR not in result:
            return
        self.curves.setdefault(number, {})[int(result[TIME_ATTR])] = float(result[self.metric])

    def _tell_ready(self) -> None:
        """Tell the searcher of ended trials in number order up to n-W for the next proposal n
        (all of them once no proposal is left)."""
        proposing = self._next < self.num_trials
        for number in sorted(self._ended):
            if proposing and (number != self._told or number > self._next - self.window):
                return
            trial_id, result, error = self._ended.pop(number)
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            self._told = max(self._told, number + 1)

    def known_before(self, number: int) -> Iterator[tuple[dict[str, Any], dict[int, float]]]:
        """The config and curve of every trial trial ``number`` is judged against: those numbered
        ``number - window`` or lower (all ended before it was proposed)."""
        for earlier in range(max(0, number - self.window + 1)):
            yield self.configs.get(earlier, {}), self.curves.get(earlier, {})


def limiter_of(search_alg: Any) -> TrialOrderLimiter:
    """The ``TrialOrderLimiter`` behind Tune's search algorithm (``SearchGenerator.searcher``),
    as a scheduler reaches it (Tune's own BOHB scheduler reaches its searcher the same way)."""
    searcher = getattr(search_alg, "searcher", search_alg)
    assert isinstance(searcher, TrialOrderLimiter), (
        f"mode reproducible needs the TrialOrderLimiter searcher, got {type(searcher).__name__}"
    )
    return searcher
