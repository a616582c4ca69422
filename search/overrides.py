"""What ``--set`` and ``--smoke-test`` do to a search YAML before it is validated: dotted
``key=value`` overrides applied to a copy of the raw mapping (``search.config`` validates the
result, so an override is checked exactly like the file)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from avcore.parsing import parse_key_value
from search.errors import SearchConfigError

# What ``--smoke-test`` changes: a handful of tiny trials that still exercise ASHA and concurrency
# (no start grid: it would not fit in them).
SMOKE_TEST: dict[str, Any] = {
    "start_grid": [],
    "budget.num_trials": 4,
    "budget.max_concurrent": 2,
    "budget.window": 2,  # reproducible: ASHA and TPE hear of trial 0 from trial 2 on
    "budget.epochs": 2,
    "budget.grace_period": 1,
    "budget.reduction_factor": 2,
    "budget.time_limit_s": 600,
}


def apply_overrides(
    raw: dict[str, Any], overrides: Sequence[str] | dict[str, Any], source: str
) -> dict[str, Any]:
    """``["a.b=1", ...]`` or ``{"a.b": 1}`` applied to a copy of the raw YAML mapping."""
    raw = copy.deepcopy(raw)
    items = overrides.items() if isinstance(overrides, dict) else (_split(o) for o in overrides)
    for key, value in items:
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SearchConfigError(f"{source}: --set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def _split(override: str) -> tuple[str, Any]:
    return parse_key_value(override, error=SearchConfigError)
