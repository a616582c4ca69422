"""Out-of-fold figures of an ensemble procedure: how well it does on clips it did not choose on.

A selection made on the validation clips scores itself optimistically on those same clips.
``cross_validate`` runs a *procedure* (validation scores of the training folds -> member weights
and class weights) on k-1 stratified folds, predicts the held-out fold, and scores every clip so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from avcore.metrics import score
from ensembling.greedy import check_inputs, combine


@dataclass(frozen=True)
class CrossValidated:
    """Out-of-fold figures: each clip predicted by an ensemble chosen without it."""

    acc: float
    uar: float
    folds: int
    predictions: np.ndarray


# A procedure maps (val_probs, labels) of the training folds to (member weights, class weights).
Procedure = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index of each clip; every class is spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for label in np.unique(labels):
        clips = rng.permutation(np.flatnonzero(labels == label))
        # Continue the round-robin across classes so small classes do not all land in fold 0.
        fold_of[clips] = (offset + np.arange(len(clips))) % folds
        offset += len(clips)
    return fold_of


def cross_validate(
    val_probs: np.ndarray,
    labels: np.ndarray,
    procedure: Procedure,
    *,
    folds: int = 5,
    seed: int = 0,
) -> CrossValidated:
    """Run ``procedure`` on k-1 folds, predict the held-out fold, and score all clips."""
    labels = np.asarray(labels, dtype=np.int64)
    check_inputs(val_probs, labels)
    if not 2 <= folds <= len(labels):
        raise ValueError(f"folds must lie in [2, {len(labels)}], got {folds}")
    fold_of = stratified_folds(labels, folds, seed)
    predictions = np.empty(len(labels), dtype=np.int64)
    for fold in range(folds):
        held = fold_of == fold
        weights, class_weights = procedure(val_probs[:, ~held], labels[~held])
        predictions[held] = combine(val_probs[:, held], weights, class_weights).argmax(axis=1)
    n_classes = val_probs.shape[2]
    return CrossValidated(
        acc=score(predictions, labels, "acc", n_classes),
        uar=score(predictions, labels, "uar", n_classes),
        folds=folds,
        predictions=predictions,
    )
