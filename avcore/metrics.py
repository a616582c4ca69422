"""The figures every package reports: accuracy, unweighted average recall (UAR, the mean of
per-class recalls, which does not reward predicting the big classes) and the confusion matrix; and
the two objectives ensembles are chosen by."""

from __future__ import annotations

import numpy as np

OBJECTIVES: tuple[str, ...] = ("acc", "uar")


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")


def per_class_recall(predictions: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class [n_classes]; NaN for a class with no clip."""
    hits = np.bincount(labels[predictions == labels], minlength=n_classes).astype(np.float64)
    totals = np.bincount(labels, minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / totals


def uar(predictions: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``labels``; NaN when there is no clip."""
    recalls = per_class_recall(predictions, labels, n_classes)
    return float(np.nanmean(recalls)) if np.isfinite(recalls).any() else float("nan")


def score(predictions: np.ndarray, labels: np.ndarray, objective: str, n_classes: int) -> float:
    """Accuracy or UAR of hard predictions; UAR averages over the classes present in ``labels``."""
    check_objective(objective)
    if objective == "acc":
        return float(np.mean(predictions == labels))
    return uar(predictions, labels, n_classes)


def confusion(predictions: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    return np.bincount(labels * n_classes + predictions, minlength=n_classes**2).reshape(
        n_classes, n_classes
    )
