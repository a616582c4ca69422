"""From aligned candidate scores to a finished ensemble: selection (plain or bagged), class
weights, the in-sample figures, the cross-validated ones and the best single candidate beside them.

``build(scores, Recipe(...))`` is what ``python -m ensembling build`` runs once the scores are
loaded; ``fit`` is the procedure that the cross-validation repeats on every fold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from avcore.datasets import default_classes
from avcore.metrics import per_class_recall, score
from ensembling.class_weights import PRESETS, WeightContext, resolve
from ensembling.crossval import CrossValidated, cross_validate
from ensembling.errors import EnsembleError
from ensembling.greedy import Selection, bagged_select, combine, evaluate, select
from ensembling.sources import ScoreSet


class Recipe(BaseModel):
    """How to build an ensemble; every field is a ``build`` option of the CLI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(50, ge=0, description="forward-selection rounds after the initialisation")
    init_top: int = Field(0, ge=0, description="start from the best N candidates, once each")
    objective: Literal["acc", "uar"] = Field("acc", description="what selection maximises")
    class_weights: str = Field("none", description="a preset name or one number per class")
    train_counts: tuple[int, ...] | None = Field(
        None, description="train clips per class; default: what the scores record"
    )
    classes: tuple[str, ...] = Field(
        default_factory=default_classes, description="the scores' classes (build sets them)"
    )
    bags: int = Field(0, ge=0, description="bagged selection over this many bags; 0 = plain")
    bag_fraction: float = Field(0.5, gt=0, le=1, description="share of candidates in each bag")
    folds: int = Field(5, ge=2, description="folds of the cross-validated estimate")
    seed: int = Field(0, description="seed of the bags and the folds")

    @model_validator(mode="after")
    def _at_least_one_step(self) -> Recipe:
        if self.rounds + self.init_top == 0:
            raise ValueError("rounds and init_top are both 0: nothing to select")
        return self

    @field_validator("class_weights")
    @classmethod
    def _known_class_weights(cls, text: str) -> str:
        if text.strip() != AUTO:
            resolve(text)  # fail before any work on an unknown preset or a bad vector
        return text.strip()


# ``--class-weights auto`` tries these presets and keeps the one its cross-validation favours.
AUTO = "auto"
AUTO_PRESETS = ("none", "sqrt-prior", "emotiw2019", "fitted")


def weight_context(recipe: Recipe) -> WeightContext:
    return WeightContext(
        classes=recipe.classes, train_counts=recipe.train_counts, objective=recipe.objective
    )


@dataclass(frozen=True)
class Fitted:
    selection: Selection
    class_weights: np.ndarray | None
    # With ``auto``: the preset chosen and the cross-validated objective of each one tried.
    chosen_class_weights: str | None = None
    class_weights_cv: dict[str, float] | None = None


def fit(val_probs: np.ndarray, labels: np.ndarray, recipe: Recipe) -> Fitted:
    """Choose members and class weights on these clips. A fitted class-weight vector is fitted on
    the ensemble chosen without weights; any other vector is used by the selection itself. With
    ``auto`` the preset is itself chosen on these clips, by an inner cross-validation, so the
    outer cross-validation of ``build`` estimates the whole procedure (nested)."""
    if recipe.class_weights == AUTO:
        chosen, by_preset = choose_class_weights(val_probs, labels, recipe)
        fitted = fit(val_probs, labels, recipe.model_copy(update={"class_weights": chosen}))
        return replace(fitted, chosen_class_weights=chosen, class_weights_cv=by_preset)
    spec = resolve(recipe.class_weights)
    context = weight_context(recipe)
    selection_weights = None if spec.fitted else spec.vector(context)
    options = dict(
        rounds=recipe.rounds,
        class_weights=selection_weights,
        init_top=min(recipe.init_top, val_probs.shape[0]),
        objective=recipe.objective,
    )
    if recipe.bags:
        selection = bagged_select(
            val_probs,
            labels,
            bags=recipe.bags,
            fraction=recipe.bag_fraction,
            seed=recipe.seed,
            **options,
        )
    else:
        selection = select(val_probs, labels, **options)
    if not spec.fitted:
        return Fitted(selection, selection_weights)
    ensemble = combine(val_probs, selection.weights)
    class_weights = spec.vector(replace(context, val_probs=ensemble, labels=labels))
    score_after = evaluate(val_probs, labels, selection.weights, class_weights, recipe.objective)
    return Fitted(replace(selection, score=score_after), class_weights)


def choose_class_weights(
    val_probs: np.ndarray, labels: np.ndarray, recipe: Recipe
) -> tuple[str, dict[str, float]]:
    """The preset of ``AUTO_PRESETS`` with the highest cross-validated objective on these clips;
    a tie goes to the earlier (simpler) one."""
    folds = min(recipe.folds, int(np.bincount(labels).max()), len(labels))
    by_preset: dict[str, float] = {}
    context = weight_context(recipe)
    for preset in (p for p in AUTO_PRESETS if PRESETS[p].applies(context)):
        candidate = recipe.model_copy(update={"class_weights": preset})

        def procedure(val: np.ndarray, fold_labels: np.ndarray, candidate=candidate):
            fold_fit = fit(val, fold_labels, candidate)
            return fold_fit.selection.weights, fold_fit.class_weights

        cv = cross_validate(val_probs, labels, procedure, folds=max(folds, 2), seed=recipe.seed)
        by_preset[preset] = cv.uar if recipe.objective == "uar" else cv.acc
    best = max(by_preset.values())
    return next(p for p in by_preset if by_preset[p] >= best - 1e-12), by_preset


@dataclass(frozen=True)
class Figures:
    """Accuracy, UAR and per-class recall of one set of validation predictions."""

    acc: float
    uar: float
    recall: tuple[float, ...]

    @classmethod
    def of(cls, predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> Figures:
        return cls(
            acc=score(predictions, labels, "acc", num_classes),
            uar=score(predictions, labels, "uar", num_classes),
            recall=tuple(float(r) for r in per_class_recall(predictions, labels, num_classes)),
        )


@dataclass(frozen=True)
class Ensemble:
    """A built ensemble with everything the outputs need."""

    scores: ScoreSet
    recipe: Recipe
    selection: Selection
    class_weights: np.ndarray | None
    val_probs: np.ndarray  # (N_val, K) the ensemble's probabilities
    test_probs: np.ndarray  # (N_test, K)
    in_sample: Figures
    cross_validated: CrossValidated
    cross_validated_without_class_weights: CrossValidated
    best_single: int  # candidate index with the highest validation accuracy on its own
    best_single_figures: Figures
    chosen_class_weights: str | None = None  # what ``auto`` chose on all validation clips
    class_weights_cv: dict[str, float] | None = None
    # The labelled test clips' figures (a fold protocol's test fold, MELD's test); None for an
    # unlabelled test split (AFEW's).
    test: Figures | None = None
    best_single_test: Figures | None = None


def build(scores: ScoreSet, recipe: Recipe) -> Ensemble:
    """Select on all validation clips, then estimate the same procedure out of fold; report the
    test clips where they are labelled."""
    recipe = recipe.model_copy(
        update={
            "classes": scores.classes,
            "train_counts": recipe.train_counts or scores.train_counts,
        }
    )
    if scores.val.shape[1] < recipe.folds:
        raise EnsembleError(
            f"{scores.val.shape[1]} validation clips cannot make {recipe.folds} folds"
        )
    fitted = fit(scores.val, scores.labels_val, recipe)
    val_probs = combine(scores.val, fitted.selection.weights, fitted.class_weights)
    test_probs = combine(scores.test, fitted.selection.weights, fitted.class_weights)

    def procedure(val: np.ndarray, labels: np.ndarray):
        fold_fit = fit(val, labels, recipe)
        return fold_fit.selection.weights, fold_fit.class_weights

    def procedure_without_class_weights(val: np.ndarray, labels: np.ndarray):
        fold_fit = fit(val, labels, recipe.model_copy(update={"class_weights": "none"}))
        return fold_fit.selection.weights, fold_fit.class_weights

    cv = cross_validate(
        scores.val, scores.labels_val, procedure, folds=recipe.folds, seed=recipe.seed
    )
    cv_plain = (
        cv
        if recipe.class_weights == "none"
        else cross_validate(
            scores.val,
            scores.labels_val,
            procedure_without_class_weights,
            folds=recipe.folds,
            seed=recipe.seed,
        )
    )
    # The best single trial as a search would report it: highest validation accuracy, lower index
    # on ties, its probabilities as they are.
    single_acc = (scores.val.argmax(axis=2) == scores.labels_val).mean(axis=1)
    best_single = int(np.argmax(single_acc))
    k = len(scores.classes)
    labelled = scores.labels_test >= 0
    test, best_single_test = None, None
    if labelled.any():
        truth = scores.labels_test[labelled]
        test = Figures.of(test_probs[labelled].argmax(axis=1), truth, k)
        single = scores.test[best_single][labelled].argmax(axis=1)
        best_single_test = Figures.of(single, truth, k)
    return Ensemble(
        scores=scores,
        recipe=recipe,
        selection=fitted.selection,
        class_weights=fitted.class_weights,
        val_probs=val_probs,
        test_probs=test_probs,
        in_sample=Figures.of(val_probs.argmax(axis=1), scores.labels_val, k),
        cross_validated=cv,
        cross_validated_without_class_weights=cv_plain,
        best_single=best_single,
        best_single_figures=Figures.of(
            scores.val[best_single].argmax(axis=1), scores.labels_val, k
        ),
        chosen_class_weights=fitted.chosen_class_weights,
        class_weights_cv=fitted.class_weights_cv,
        test=test,
        best_single_test=best_single_test,
    )
