"""The figures' house style, shared by every package that draws: the one confusion matrix of trials
and ensembles, and the resolution and canvas every PNG is saved with.

Figures are drawn on matplotlib's Agg canvas without pyplot (no global figure state, safe in
threads and Ray actors). This is the one ``avcore`` module that imports matplotlib: import it
inside the function that draws, so a CLI's ``--help`` does not pay for it.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from avcore.metrics import confusion, uar

# A slide or a paper column needs about 1,000 px across a figure: 160 dpi at 6 inches gives it.
DPI = 160


def plain(text: str) -> str:
    """``text`` (a clip id, a configuration or store name: user input) drawn as written: a ``$``
    would otherwise start matplotlib's mathtext, and a malformed formula fails the save."""
    return str(text).replace("$", r"\$")


def heading(text: str, width: int = 72) -> str:
    """A title: ``plain``, wrapped at ``width`` characters so a long name stays on the figure."""
    # Wrapped first: a break must not part the escape from its '$'.
    return "\n".join(
        plain(wrapped) for line in str(text).split("\n") for wrapped in textwrap.wrap(line, width)
    )


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` × ``height`` inches on an Agg canvas (``save`` draws it at ``DPI``)."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """``fig`` as a PNG at ``DPI`` (recorded in the file, so a slide program sizes it right)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_confusion(
    predicted: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """The confusion matrix of ``predicted`` against ``labels``, shaded by the share of the true
    class (recall on the diagonal), each cell with its share and count. ``title`` names what was
    scored and on which split (``"val — f-mean+logmel self/self fbp"``); a second line gives the
    accuracy, UAR and number of clips."""
    predicted = np.asarray(predicted, np.int64)
    labels = np.asarray(labels, np.int64)
    n = len(classes)
    counts = confusion(predicted, labels, n)
    rows = counts.sum(axis=1, keepdims=True)
    rates = counts / np.where(rows > 0, rows, 1)
    fig = new_figure(6.2, 5.4)
    # Fixed margins, not tight_layout: a trial's plots are drawn on the search's path.
    fig.subplots_adjust(left=0.15, right=0.95, bottom=0.17, top=0.88)
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for true in range(n):
        for guess in range(n):
            ax.text(
                guess,
                true,
                f"{rates[true, guess]:.2f}\n({counts[true, guess]})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[true, guess] > 0.5 else "black",
            )
    names = [plain(name) for name in classes]
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="share of the true class")
    total = int(counts.sum())
    accuracy = np.trace(counts) / max(1, total)
    recall = uar(predicted, labels, n) if total else float("nan")
    ax.set_title(
        f"{heading(title)}\naccuracy {accuracy:.3f} · UAR {recall:.3f} · {total} clips", fontsize=10
    )
    return save(fig, path)
