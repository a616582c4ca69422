"""ASHA that compares like with like: one ASHA per value of a sampled parameter; and ASHA whose
decisions do not depend on which trial reports first (``OrderedASHA``, ``mode: reproducible``).

A search's ASHA stops a trial at a rung when it ranks below the best 1/reduction_factor of the
trials that reached that rung. FBP trials start slower than concatenation (the bilinear factors
need epochs before they pay off), so one ASHA over both fusions cut every FBP trial at its first
rung and the search could not answer the paper's FBP-vs-concatenation question. ``GroupedASHA``
keeps one ``ASHAScheduler`` per value of ``group_key`` (``budget.compare_within``, ``fusion`` by
default): a trial is stopped only for ranking low among trials of its own kind. Built on Tune's
public ``FIFOScheduler``/``ASHAScheduler`` API only.

``OrderedASHA`` keeps ASHA's rungs and cutoff, but judges trial n at a rung against the trials
numbered n - ``budget.window`` or lower of its group that reached the rung (``search.ordered``):
all of them had ended before n was proposed, so every run of the search takes the same decision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from search.ordered import TIME_ATTR, limiter_of
from search.trial_fields import TRIAL_NUMBER

UNGROUPED = "-"


class GroupedASHA(FIFOScheduler):
    """ASHA decisions within groups of trials that share ``trial.config[group_key]``."""

    def __init__(self, group_key: str, **asha_options: Any) -> None:
        super().__init__()
        self.group_key = group_key
        self._options = asha_options
        self._groups: dict[str, ASHAScheduler] = {}
        self._group_of: dict[str, str] = {}
        self._search_properties: tuple[str | None, str | None] = (None, None)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        self._search_properties = (metric, mode)
        return all(g.set_search_properties(metric, mode, **spec) for g in self._groups.values())

    def _scheduler(self, trial) -> ASHAScheduler:
        name = self._group_of.get(trial.trial_id)
        if name is None:
            name = str(trial.config.get(self.group_key, UNGROUPED))
            self._group_of[trial.trial_id] = name
        if name not in self._groups:
            scheduler = ASHAScheduler(**self._options)
            scheduler.set_search_properties(*self._search_properties)
            self._groups[name] = scheduler
        return self._groups[name]

    def on_trial_add(self, tune_controller, trial) -> None:
        self._scheduler(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._scheduler(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._scheduler(trial).on_trial_complete(tune_controller, trial, result)
        self._group_of.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._scheduler(trial).on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._scheduler(trial).on_trial_remove(tune_controller, trial)
        self._group_of.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return "\n".join(
            f"{self.group_key}={name}: {scheduler.debug_string()}"
            for name, scheduler in self._groups.items()
        )


class OrderedASHA(FIFOScheduler):
    """ASHA's rule (stop a trial at a rung when its metric is below the best 1/reduction_factor
    of the trials that reached that rung before it) where "before it" is a fixed set: the trials
    numbered n - window or lower (``TrialOrderLimiter.known_before``), within ``group_key``'s
    groups. Stateless: the curves live in the searcher, whose state Tune snapshots."""

    def __init__(
        self,
        *,
        group_key: str | None,
        max_t: int,
        grace_period: int,
        reduction_factor: float,
    ) -> None:
        super().__init__()
        self.group_key, self.max_t, self.reduction_factor = group_key, max_t, reduction_factor
        # ASHA's rungs (AsyncHyperBandScheduler's bracket 0); a trial reaches one at the first
        # epoch at or past it.
        count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
        self.rungs = {math.ceil(grace_period * reduction_factor**k) for k in range(count)}
        self._metric: str | None = None
        self._sign = 1.0

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        self._metric = metric or self._metric
        self._sign = -1.0 if mode == "min" else 1.0
        return True

    def _group(self, config: dict[str, Any]) -> str:
        return UNGROUPED if self.group_key is None else str(config.get(self.group_key, UNGROUPED))

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        epoch, value = result.get(TIME_ATTR), result.get(self._metric)
        if epoch is None or value is None:
            return TrialScheduler.CONTINUE
        if epoch >= self.max_t:
            return TrialScheduler.STOP
        if epoch not in self.rungs:
            return TrialScheduler.CONTINUE
        group = self._group(trial.config)
        earlier = [
            curve[epoch]
            for config, curve in limiter_of(tune_controller.search_alg).known_before(
                trial.config[TRIAL_NUMBER]
            )
            if epoch in curve and self._group(config) == group
        ]
        if not earlier:
            return TrialScheduler.CONTINUE
        signed = np.array(earlier) * self._sign
        cutoff = np.nanpercentile(signed, (1 - 1 / self.reduction_factor) * 100)
        return TrialScheduler.STOP if value * self._sign < cutoff else TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"OrderedASHA: rungs {sorted(self.rungs)}, grouped by {self.group_key}"


def make_scheduler(budget: Any, mode: str = "async") -> FIFOScheduler:
    """ASHA on ``training_iteration`` (epochs) from a search's ``budget``; with
    ``budget.compare_within`` one ASHA per value of that sampled parameter (``GroupedASHA``);
    ``mode="reproducible"``: ``OrderedASHA`` (with the search's ``TrialOrderLimiter``)."""
    options = dict(
        max_t=budget.epochs,
        grace_period=budget.grace_period,
        reduction_factor=budget.reduction_factor,
    )
    if mode == "reproducible":
        return OrderedASHA(group_key=budget.compare_within, **options)
    options["time_attr"] = TIME_ATTR
    if budget.compare_within:
        return GroupedASHA(budget.compare_within, **options)
    return ASHAScheduler(**options)
