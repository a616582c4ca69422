"""ASHA that compares like with like: one ASHA per value of a sampled parameter.

A search's ASHA stops a trial at a rung when it ranks below the best 1/reduction_factor of the
trials that reached that rung. FBP trials start slower than concatenation (the bilinear factors
need epochs before they pay off), so one ASHA over both fusions cut every FBP trial at its first
rung and the search could not answer the paper's FBP-vs-concatenation question. ``GroupedASHA``
keeps one ``ASHAScheduler`` per value of ``group_key`` (``budget.compare_within``, ``fusion`` by
default): a trial is stopped only for ranking low among trials of its own kind. Built on Tune's
public ``FIFOScheduler``/``ASHAScheduler`` API only.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

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


def make_scheduler(budget: Any) -> FIFOScheduler:
    """ASHA on ``training_iteration`` (epochs) from a search's ``budget``; with
    ``budget.compare_within`` one ASHA per value of that sampled parameter (``GroupedASHA``)."""
    options = dict(
        time_attr="training_iteration",
        max_t=budget.epochs,
        grace_period=budget.grace_period,
        reduction_factor=budget.reduction_factor,
    )
    if budget.compare_within:
        return GroupedASHA(budget.compare_within, **options)
    return ASHAScheduler(**options)
