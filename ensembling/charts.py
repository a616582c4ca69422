"""The two PNGs of an ensemble's output folder (matplotlib, Agg backend): the validation
confusion matrix and the selection trajectory. ``ensembling.report`` writes them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avcore.afew import CLASSES
from avcore.metrics import confusion

if TYPE_CHECKING:
    from ensembling.build import Ensemble


def plot_confusion(predicted: np.ndarray, labels: np.ndarray, path: Path, title: str) -> None:
    """The confusion matrix of ``predicted`` against ``labels``: counts, shaded by row share."""
    counts = confusion(predicted, labels, len(CLASSES))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for true in range(len(CLASSES)):
        for predicted in range(len(CLASSES)):
            ax.text(
                predicted,
                true,
                str(counts[true, predicted]),
                ha="center",
                va="center",
                color="white" if rates[true, predicted] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=160)
    plt.close(fig)


def plot_trajectory(ensemble: Ensemble, path: Path, title: str) -> None:
    """The objective after each selection step (or each bag), against the best single trial and
    the cross-validated ensemble."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    selection = ensemble.selection
    fig, ax = plt.subplots(figsize=(7, 4))
    if selection.bags:
        for bag in selection.bags:
            ax.plot(range(1, len(bag.trajectory) + 1), bag.trajectory, color="grey", alpha=0.3)
        ax.plot([], [], color="grey", alpha=0.3, label="each bag (its own subset)")
        ax.set_xlabel("selection step")
        bag_axis = ax.twiny()
        bag_axis.plot(
            range(1, len(selection.trajectory) + 1), selection.trajectory, "o-", label="bag average"
        )
        bag_axis.set_xlabel("bags averaged")
    else:
        steps = range(1, len(selection.trajectory) + 1)
        ax.plot(steps, selection.trajectory, "-", label="after each step")
        ax.axvline(
            selection.kept, color="red", linestyle="--", label=f"kept prefix ({selection.kept})"
        )
        ax.set_xlabel("selection step")
    ax.axhline(
        ensemble.best_single_figures.acc,
        color="green",
        linestyle=":",
        label="best single trial (val acc, selected on val)",
    )
    cross_validated = ensemble.cross_validated
    ax.axhline(
        cross_validated.acc,
        color="purple",
        linestyle="-.",
        label=f"ensemble, {cross_validated.folds}-fold CV of the selection (acc)",
    )
    ax.set_ylabel(f"validation {selection.objective} (in-sample)")
    ax.set_title(f"greedy ensemble selection — {title}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=160)
    plt.close(fig)
