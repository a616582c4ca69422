"""The PNGs of an ensemble's output folder, in the house style of ``avcore.figures``: the
validation confusion matrix (``avcore.figures.plot_confusion``, the trials' own) and the selection
trajectory. ``ensembling.report`` writes them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from avcore import figures

if TYPE_CHECKING:
    from ensembling.build import Ensemble


# What the figures call the objectives.
OBJECTIVE_NAMES = {"acc": "accuracy", "uar": "UAR"}


def source_label(source: dict) -> str:
    """What an ensemble was built from, short enough for a title: the experiment, or the score
    folders' names (their count and the first one when they are many)."""
    if source.get("experiment"):
        return str(source["experiment"])
    names = [Path(folder).name for folder in source.get("dirs", [])]
    text = ", ".join(names)
    return text if len(text) <= 40 else f"{len(names)} score folders ({names[0]}, …)"


def plot_confusion(ensemble: Ensemble, path: Path, name: str) -> Path:
    """The ensemble's in-sample validation predictions against the labels."""
    return figures.plot_confusion(
        ensemble.val_probs.argmax(axis=1),
        ensemble.scores.labels_val,
        ensemble.scores.classes,
        path,
        f"val (in-sample) — ensemble of {name}",
    )


def plot_trajectory(ensemble: Ensemble, path: Path, name: str) -> Path:
    """The objective after each selection step (or each bag), against the best single trial and
    the cross-validated ensemble, all in the selection's objective."""
    selection = ensemble.selection
    objective = selection.objective
    fig = figures.new_figure(7.0, 4.4)
    ax = fig.add_subplot()
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
        ax.plot(steps, selection.trajectory, "-", label="after each step (in-sample)")
        ax.axvline(
            selection.kept, color="red", linestyle="--", label=f"kept prefix ({selection.kept})"
        )
        ax.set_xlabel("selection step")
    ax.axhline(
        getattr(ensemble.best_single_figures, objective),
        color="green",
        linestyle=":",
        label="best single trial (selected on val)",
    )
    cross_validated = ensemble.cross_validated
    ax.axhline(
        getattr(cross_validated, objective),
        color="purple",
        linestyle="-.",
        label=f"ensemble, {cross_validated.folds}-fold cross-validated",
    )
    ax.set_ylabel(f"val {OBJECTIVE_NAMES[objective]}")
    ax.set_title(
        f"{figures.heading(f'ensemble of {name} — val')}\n"
        f"greedy selection by {OBJECTIVE_NAMES[objective]}",
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return figures.save(fig, path)
