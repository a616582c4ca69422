"""A search's start points: configurations run first, before Optuna samples on its own.

- ``start_from``: given configurations, e.g. the paper's hand-picked best. Each is a mapping of
  ``space`` keys and store variants; a key it leaves out is sampled as usual.
- ``start_grid``: categorical keys whose every combination starts one trial (the rest sampled),
  after ``start_from``: ``[fusion, visual_attention, audio_attention]`` puts a trial in every cell
  of the paper's Table 2, which TPE alone, drawn to its early best, leaves mostly empty.

Optuna runs them as its first trials (``enqueue_trial``, through ``OptunaSearch``'s
``points_to_evaluate``), and TPE learns from them like any other, so a search never ends below a
configuration it was started from, other than by seed noise.

    start_from:
      - {visual_feature: f-mean, audio_feature: logmel, visual_attention: transformer, ...}
    start_grid: [fusion, visual_attention, audio_attention]

A key outside the space is an error (a typo, or a setting the search fixes). A point with a value
the space cannot take (the demo's start names f-mean, a ``--set stores.visual_feature=[basic]``
leaves it out) is left out with a line saying why: Optuna would otherwise stop at that trial.
"""

from __future__ import annotations

import itertools
from typing import Any

from search.errors import SearchConfigError
from search.trial_fields import FEATURE_KEYS


def _choices(config: Any) -> dict[str, Any]:
    return {
        **config.space,
        **{key: list(getattr(config.stores, key)) for key in FEATURE_KEYS},
    }


def check_start_points(config: Any, source: str) -> None:
    """``SearchConfigError`` naming ``start_from[i].key`` for a key the search does not sample."""
    choices = _choices(config)
    for index, point in enumerate(config.start_from):
        for key in point:
            if key not in choices:
                raise SearchConfigError(
                    f"{source}: start_from[{index}].{key}: not sampled by this search; a start "
                    f"point sets space keys and store variants only ({', '.join(choices)})"
                )


def check_start_grid(config: Any, source: str) -> None:
    """Each ``start_grid`` key a categorical the search samples, once; and its combinations, with
    ``start_from``, within ``budget.num_trials``."""
    choices = _choices(config)
    for key in config.start_grid:
        if not isinstance(choices.get(key), list):
            raise SearchConfigError(
                f"{source}: start_grid: {key!r} is not a list of choices the search samples "
                f"(space keys with choices and store variants: "
                f"{', '.join(k for k, v in choices.items() if isinstance(v, list))})"
            )
    if len(set(config.start_grid)) != len(config.start_grid):
        raise SearchConfigError(f"{source}: start_grid: a key is listed twice")
    combinations = len(_grid(config))
    if len(config.start_from) + combinations > config.budget.num_trials:
        raise SearchConfigError(
            f"{source}: start_grid: {combinations} combinations and "
            f"{len(config.start_from)} start_from points exceed budget.num_trials "
            f"({config.budget.num_trials}): raise it, or drop the grid (--set start_grid=[])"
        )


def _grid(config: Any) -> list[dict[str, Any]]:
    choices = _choices(config)
    keys = list(config.start_grid)
    if not keys:  # (the product of no choices is one empty combination)
        return []
    return [dict(zip(keys, combo)) for combo in itertools.product(*(choices[k] for k in keys))]


def left_out(config: Any) -> dict[int, str]:
    """Index -> why, for each start point with a value outside the space (``start_from[i].key:
    value is outside the space (...)``)."""
    choices, out = _choices(config), {}
    for index, point in enumerate(config.start_from):
        for key, value in point.items():
            if key in choices and not _inside(choices[key], value):
                out[index] = (
                    f"start_from[{index}].{key}: {value!r} is outside the space "
                    f"({_show(choices[key])})"
                )
                break
    return out


def _inside(spec: Any, value: Any) -> bool:
    if isinstance(spec, list):
        return any(value == choice and type(value) is type(choice) for choice in spec)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if spec.is_int and not float(value).is_integer():
        return False
    return spec.low <= value <= spec.high


def _show(spec: Any) -> str:
    if isinstance(spec, list):
        return f"choices {spec}"
    return f"{spec.low}..{spec.high}{', log' if spec.log else ''}"


def start_points(config: Any) -> list[dict[str, Any]]:
    """The start points that fit the space, as Optuna's fixed parameters (integers of an integer
    range as int)."""
    points, unfit = [], left_out(config)
    given = [p for i, p in enumerate(config.start_from) if i not in unfit]
    for point in given + _grid(config):
        fixed = {}
        for key, value in point.items():
            spec = config.space.get(key)
            integral = spec is not None and not isinstance(spec, list) and spec.is_int
            fixed[key] = int(value) if integral else value
        if "both" in config.space.get("modality", []) and "modality" not in fixed:
            fixed["modality"] = "both"  # a configuration is audio-visual unless it says otherwise
        points.append(fixed)
    return points
