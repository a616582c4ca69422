"""Per-class score multipliers applied to an ensemble's probabilities (the paper re-weights every
submission this way), as named presets or an explicit vector in AFEW class order.

Presets live in a registry filled by ``@register``; ``resolve("sqrt-prior")`` or
``resolve("0.1,0.2,...")`` turns what a user typed into a ``ClassWeightSpec``; ``spec.vector(...)``
gives the weights for one ensemble (``fitted`` needs that ensemble's validation probabilities).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from avcore.afew import CLASSES, TRAIN_COUNTS
from avcore.metrics import score
from ensembling.errors import ClassWeightError

# The paper's submission vector (Table 4 text), Angry..Surprise.
EMOTIW2019 = (0.15, 0.097, 0.129, 0.185, 0.138, 0.082, 0.215)


@dataclass(frozen=True)
class WeightContext:
    """What a preset may look at: train class counts and, for fitting, one ensemble's validation
    probabilities [clips, classes] with their labels and the objective to improve."""

    train_counts: tuple[int, ...] = TRAIN_COUNTS
    val_probs: np.ndarray | None = None
    labels: np.ndarray | None = None
    objective: str = "acc"


@dataclass(frozen=True)
class Preset:
    name: str
    help: str
    make: Callable[[WeightContext], np.ndarray | None]
    fitted: bool


PRESETS: dict[str, Preset] = {}


def register(name: str, help: str, *, fitted: bool = False) -> Callable:
    """Add a preset; ``fitted`` ones need the ensemble's validation probabilities."""

    def wrap(make: Callable[[WeightContext], np.ndarray | None]) -> Callable:
        PRESETS[name] = Preset(name, help, make, fitted)
        return make

    return wrap


def check_vector(values, source: str = "class weights") -> np.ndarray:
    """A valid weight vector: 7 finite, non-negative entries, not all zero."""
    vector = np.asarray(values, dtype=np.float64)
    if vector.shape != (len(CLASSES),):
        raise ClassWeightError(
            f"{source}: expected {len(CLASSES)} values ({', '.join(CLASSES)}), got {vector.size}"
        )
    if not np.all(np.isfinite(vector)) or np.any(vector < 0) or not np.any(vector > 0):
        raise ClassWeightError(f"{source}: entries must be finite and >= 0, not all zero: {values}")
    return vector


@register("none", "no re-weighting")
def _none(context: WeightContext) -> np.ndarray | None:
    return None


@register("emotiw2019", "the paper's submission vector " + ", ".join(map(str, EMOTIW2019)))
def _emotiw2019(context: WeightContext) -> np.ndarray:
    return np.asarray(EMOTIW2019)


@register("sqrt-prior", "square root of the train class counts, normalised to sum to one")
def _sqrt_prior(context: WeightContext) -> np.ndarray:
    # The paper says its vector is "the square root of the sample numbers"; its printed vector is
    # not that of AFEW's train counts, so both are offered.
    roots = np.sqrt(check_vector(context.train_counts, "train class counts"))
    return roots / roots.sum()


@register("fitted", "per-class multipliers fitted on validation by coordinate ascent", fitted=True)
def _fitted(context: WeightContext) -> np.ndarray:
    if context.val_probs is None or context.labels is None:
        raise ClassWeightError("the 'fitted' class weights need validation probabilities")
    return fit(context.val_probs, context.labels, objective=context.objective)


def fit(
    val_probs: np.ndarray,
    labels: np.ndarray,
    *,
    objective: str = "acc",
    sweeps: int = 10,
    grid: np.ndarray | None = None,
) -> np.ndarray:
    """Coordinate ascent on the class multipliers of ``val_probs`` [clips, classes]: each class
    in turn takes the multiplier (current × a grid factor) that maximises the objective, keeping
    the current one unless another is strictly better; stops when a sweep changes nothing."""
    grid = np.geomspace(1 / 8, 8, 49) if grid is None else grid
    n_classes = val_probs.shape[1]
    weights = np.ones(n_classes)

    def value(w: np.ndarray) -> float:
        return score((val_probs * w).argmax(axis=1), labels, objective, n_classes)

    best = value(weights)
    for _ in range(sweeps):
        improved = False
        for k in range(n_classes):
            for factor in grid:
                trial = weights.copy()
                trial[k] *= factor
                trial_value = value(trial)
                if trial_value > best + 1e-12:
                    best, weights, improved = trial_value, trial, True
        if not improved:
            break
    return weights / weights.sum()


@dataclass(frozen=True)
class ClassWeightSpec:
    """A preset name or an explicit vector, as given on the command line."""

    name: str
    explicit: tuple[float, ...] | None = None

    @property
    def fitted(self) -> bool:
        return self.explicit is None and PRESETS[self.name].fitted

    def vector(self, context: WeightContext | None = None) -> np.ndarray | None:
        if self.explicit is not None:
            return np.asarray(self.explicit)
        return PRESETS[self.name].make(context or WeightContext())


def resolve(text: str) -> ClassWeightSpec:
    """``"sqrt-prior"`` (a preset) or ``"0.1,0.2,0.1,0.2,0.1,0.2,0.1"`` (a vector)."""
    text = text.strip()
    if text in PRESETS:
        return ClassWeightSpec(text)
    if "," in text or _is_number(text):
        try:
            values = [float(part) for part in text.split(",")]
        except ValueError:
            raise ClassWeightError(f"class weights {text!r}: not a list of numbers") from None
        return ClassWeightSpec("explicit", tuple(check_vector(values, f"class weights {text!r}")))
    raise ClassWeightError(
        f"unknown class-weight preset {text!r}; known: {', '.join(PRESETS)}, or 7 comma-separated numbers"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
