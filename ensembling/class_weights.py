"""Per-class score multipliers applied to an ensemble's probabilities (the paper re-weights every
submission this way), as named presets or an explicit vector in the scores' class order.

The class set is the data's (``scores.npz`` records it): ``sqrt-prior`` starts from the train
counts the runs fitted on, ``emotiw2019`` is the paper's literal vector and valid only for AFEW's
seven classes (refused elsewhere, in one line), an explicit vector needs one value per class.

Presets live in a registry filled by ``@register``; ``resolve("sqrt-prior")`` or
``resolve("0.1,0.2,...")`` turns what a user typed into a ``ClassWeightSpec``; ``spec.vector(...)``
gives the weights for one ensemble (``fitted`` needs that ensemble's validation probabilities).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from avcore.datasets import AFEW
from avcore.metrics import score
from ensembling.errors import ClassWeightError

# The paper's submission vector (Table 4 text), Angry..Surprise.
EMOTIW2019 = (0.15, 0.097, 0.129, 0.185, 0.138, 0.082, 0.215)


@dataclass(frozen=True)
class WeightContext:
    """What a preset may look at: the classes, their train counts (None when the scores record
    none) and, for fitting, one ensemble's validation probabilities [clips, classes] with their
    labels and the objective to improve."""

    classes: tuple[str, ...] = AFEW.classes
    train_counts: tuple[int, ...] | None = AFEW.class_counts
    val_probs: np.ndarray | None = None
    labels: np.ndarray | None = None
    objective: str = "acc"


@dataclass(frozen=True)
class Preset:
    name: str
    help: str
    make: Callable[[WeightContext], np.ndarray | None]
    fitted: bool
    # Whether the preset can serve these classes (``auto`` skips those that cannot).
    applies: Callable[[WeightContext], bool] = lambda context: True


PRESETS: dict[str, Preset] = {}


def register(
    name: str,
    help: str,
    *,
    fitted: bool = False,
    applies: Callable[[WeightContext], bool] | None = None,
) -> Callable:
    """Add a preset; ``fitted`` ones need the ensemble's validation probabilities."""

    def wrap(make: Callable[[WeightContext], np.ndarray | None]) -> Callable:
        PRESETS[name] = Preset(name, help, make, fitted, applies or (lambda context: True))
        return make

    return wrap


def check_vector(
    values, source: str = "class weights", classes: tuple[str, ...] | None = None
) -> np.ndarray:
    """A valid weight vector: finite, non-negative entries, not all zero; one per class when
    ``classes`` are given."""
    vector = np.asarray(values, dtype=np.float64)
    if vector.ndim != 1 or (classes is not None and vector.shape != (len(classes),)):
        expected = "a list" if classes is None else f"{len(classes)} values ({', '.join(classes)})"
        raise ClassWeightError(f"{source}: expected {expected}, got {vector.size}")
    if not np.all(np.isfinite(vector)) or np.any(vector < 0) or not np.any(vector > 0):
        raise ClassWeightError(f"{source}: entries must be finite and >= 0, not all zero: {values}")
    return vector


@register("none", "no re-weighting")
def _none(context: WeightContext) -> np.ndarray | None:
    return None


@register(
    "emotiw2019",
    "the paper's AFEW submission vector " + ", ".join(map(str, EMOTIW2019)) + " (AFEW only)",
    applies=lambda context: tuple(context.classes) == AFEW.classes,
)
def _emotiw2019(context: WeightContext) -> np.ndarray:
    if tuple(context.classes) != AFEW.classes:
        raise ClassWeightError(
            f"emotiw2019 is the paper's vector for AFEW's classes ({', '.join(AFEW.classes)}); "
            f"these scores' classes are {', '.join(context.classes)}: use sqrt-prior or fitted"
        )
    return np.asarray(EMOTIW2019)


@register(
    "sqrt-prior",
    "square root of the train class counts the runs fitted on, normalised to sum to one",
    applies=lambda context: context.train_counts is not None,
)
def _sqrt_prior(context: WeightContext) -> np.ndarray:
    # The paper says its vector is "the square root of the sample numbers"; its printed vector is
    # not that of AFEW's train counts, so both are offered.
    if context.train_counts is None:
        raise ClassWeightError(
            "sqrt-prior needs the train class counts, and these scores record none "
            "(give them: --train-counts N,N,...)"
        )
    roots = np.sqrt(check_vector(context.train_counts, "train class counts", context.classes))
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
        context = context or WeightContext()
        if self.explicit is not None:
            return check_vector(self.explicit, "class weights", context.classes)
        return PRESETS[self.name].make(context)


def resolve(text: str) -> ClassWeightSpec:
    """``"sqrt-prior"`` (a preset) or ``"0.1,0.2,0.1,0.2,0.1,0.2,0.1"`` (a vector, one value
    per class: checked against the scores' classes when it is used)."""
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
        f"unknown class-weight preset {text!r}; known: {', '.join(PRESETS)}, or one number per "
        "class, comma-separated"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
