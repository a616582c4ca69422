"""PNG plots of a trial (matplotlib, Agg backend): the validation confusion matrix and the
per-frame attention weights of a few validation clips. ``search`` logs both to MLflow; the
``fit`` command writes them beside ``scores.npz``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from avcore.metrics import confusion

# Slides and papers need about 1,000 px across a figure; 160 dpi gives that at these sizes.
DPI = 160
# Plots are drawn once per trial, off the trial's path but on the search's: fixed margins instead
# of tight_layout and one heatmap per modality instead of a subplot per clip keep each under ~0.3 s.


def plot_confusion(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "",
) -> Path:
    """Row-normalised confusion matrix (recall on the diagonal), rate and count in each cell."""
    counts = confusion(np.asarray(probs).argmax(axis=1), np.asarray(labels, np.int64), len(classes))
    rows = counts.sum(axis=1, keepdims=True)
    rates = counts / np.where(rows > 0, rows, 1)
    fig = Figure(figsize=(5.8, 5.4))
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.17, top=0.93)
    ax = fig.add_subplot()
    ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)  # each cell is labelled: no colorbar
    for true in range(len(classes)):
        for guess in range(len(classes)):
            ax.text(
                guess,
                true,
                f"{rates[true, guess]:.2f}\n({counts[true, guess]})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[true, guess] > 0.5 else "black",
            )
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(counts) / max(1, counts.sum())
    ax.set_title(f"{title + ' — ' if title else ''}accuracy {accuracy:.3f}")
    return _save(fig, path)


def plot_attention(
    attention: Mapping[str, Any],
    path: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """One heatmap per modality present: a row per clip, a cell per frame/vector, coloured by the
    frame's weight relative to uniform (weight × number of frames; 1 = uniform, white). Cells past
    a clip's last frame are padding: hatched grey, never a colour of the scale. Rows name the clip
    with its true and predicted class; each panel names its attention kind."""
    clip_ids = list(attention.get("clip_ids", []))
    labels, predicted = attention.get("labels"), attention.get("predicted")
    kinds = attention.get("kinds", {})
    rows = list(clip_ids)
    if classes is not None and labels is not None and predicted is not None:
        rows = [
            f"{clip}\ntrue {classes[true]} · pred {classes[guess]}"
            for clip, true, guess in zip(clip_ids, labels, predicted)
        ]
    modalities = [m for m in ("visual", "audio") if len(attention.get(m, [])) > 0]
    fig = Figure(figsize=(5.2 * max(1, len(modalities)), 1.6 + 0.6 * max(1, len(clip_ids))))
    fig.subplots_adjust(
        left=0.3 / max(1, len(modalities)), right=0.9, bottom=0.2, top=0.8, wspace=0.55
    )
    if title:
        fig.suptitle(title, fontsize=10)
    if not modalities:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no attention weights", ha="center", va="center")
        ax.set_axis_off()
    cmap = colormaps["RdBu_r"].with_extremes(bad="#bdbdbd")
    for col, modality in enumerate(modalities):
        ax = fig.add_subplot(1, len(modalities), col + 1)
        weights = [np.asarray(w, dtype=float) for w in attention[modality]]
        width = max([len(w) for w in weights] + [1])
        relative = np.full((len(weights), width), np.nan)
        for row, w in enumerate(weights):
            relative[row, : len(w)] = w * len(w)
        relative = np.ma.masked_invalid(relative)  # masked: padding, no such frame
        image = ax.imshow(
            relative, aspect="auto", cmap=cmap, vmin=0.0, vmax=2.0, interpolation="nearest"
        )
        for row, w in enumerate(weights):
            if len(w) < width:
                ax.add_patch(
                    Rectangle(
                        (len(w) - 0.5, row - 0.5), width - len(w), 1,
                        hatch="///", fill=False, edgecolor="#7a7a7a", linewidth=0,
                    )
                )  # fmt: skip
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_xlabel(f"{modality} frame / vector (grey: padding)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        kind = kinds.get(modality)
        ax.set_title(f"{modality}: {kind + ' ' if kind else ''}attention (× uniform)", fontsize=9)
        if col == len(modalities) - 1:
            fig.colorbar(image, ax=ax, fraction=0.04, label="weight × frames")
    return _save(fig, path)


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path
