"""Optuna's view of a finished search, for its plots: the study rebuilt from the trial runs in
MLflow through Optuna's public API, then parameter importances and parallel coordinates.

Rebuilding it (instead of reaching into the searcher Tune holds) gives the same study after a
``run`` and after a ``resume``, from the record every other view reads: each finished run's params
are replayed through the search's own ``SpaceSampler``, so a trial holds exactly the parameters it
sampled (FBP's under FBP only, ...) with the distributions they were drawn from.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from avcore.results import FINISHED, STATUS
from search.config import SearchConfig
from search.space import SpaceSampler
from search.trial_fields import trial_defaults

METRIC = "val_acc"


class _Replay:
    """Stands in for an Optuna trial: answers each ``suggest_*`` with the value a run recorded
    (MLflow keeps params as strings) and notes the distribution it was drawn from."""

    def __init__(self, recorded: Mapping[str, str]) -> None:
        self.recorded = recorded
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, Any] = {}

    def _take(self, name: str, distribution: Any, value: Any) -> Any:
        self.params[name], self.distributions[name] = value, distribution
        return value

    def suggest_categorical(self, name: str, choices: Iterable[Any]) -> Any:
        from optuna.distributions import CategoricalDistribution

        choices = list(choices)
        value = next(c for c in choices if str(c) == self.recorded[name])
        return self._take(name, CategoricalDistribution(choices), value)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        from optuna.distributions import IntDistribution

        value = int(float(self.recorded[name]))  # a float field logs "8.0"
        return self._take(name, IntDistribution(low, high, log=log, step=step), value)

    def suggest_float(
        self, name: str, low: float, high: float, step: float | None = None, log: bool = False
    ) -> float:
        from optuna.distributions import FloatDistribution

        value = float(self.recorded[name])
        return self._take(name, FloatDistribution(low, high, log=log, step=step), value)


def study_from_runs(config: SearchConfig, runs: Iterable[Any]):
    """An in-memory Optuna study holding every finished run as a complete trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=config.name, direction="maximize")
    sampler = SpaceSampler(config, trial_defaults())
    for run in runs:
        value = run.data.metrics.get(METRIC)
        if run.data.tags.get(STATUS) != FINISHED or value is None:
            continue
        replay = _Replay(run.data.params)
        try:
            sampler(replay)
            trial = optuna.trial.create_trial(
                params=replay.params, distributions=replay.distributions, value=value
            )
        except (KeyError, StopIteration, ValueError):  # a run of another space (edited config)
            continue
        study.add_trial(trial)
    return study


def draw_study_plots(study: Any, folder: Path) -> None:
    """Parameter importances and parallel coordinates (PNG) from the finished trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return
    for name, draw in (
        ("param_importances.png", optuna_plots.plot_param_importances),
        ("parallel_coordinate.png", optuna_plots.plot_parallel_coordinate),
    ):
        try:
            with warnings.catch_warnings():  # Optuna's experimental and axis-limit warnings
                warnings.simplefilter("ignore")
                axes = draw(study)
        except (ValueError, RuntimeError) as exc:  # e.g. a single distinct value per param
            Path(folder, name.replace(".png", ".txt")).write_text(f"not drawn: {exc}\n")
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
        figure.set_size_inches(10, 6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure.tight_layout()
            figure.savefig(folder / name, dpi=100)
        plt.close(figure)
