"""PNG plots of a trial in the house style of ``avcore.figures``: the validation confusion matrix
and the per-frame attention weights of a few validation clips. ``search`` logs both to MLflow; the
``fit`` command writes them beside ``scores.npz``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from avcore import figures

# Plots are drawn once per trial, off the trial's path but on the search's: fixed margins instead
# of tight_layout and one heatmap per modality instead of a subplot per clip keep each under ~0.3 s.


def plot_confusion(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "",
) -> Path:
    """The house confusion matrix (``avcore.figures``) of a trial's class scores."""
    return figures.plot_confusion(
        np.asarray(probs).argmax(axis=1), labels, classes, path, title or "val"
    )


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
    rows = [figures.plain(clip) for clip in clip_ids]
    if classes is not None and labels is not None and predicted is not None:
        rows = [
            f"{figures.plain(clip)}\ntrue {classes[true]} · pred {classes[guess]}"
            for clip, true, guess in zip(clip_ids, labels, predicted)
        ]
    modalities = [m for m in ("visual", "audio") if len(attention.get(m, [])) > 0]
    fig = figures.new_figure(5.2 * max(1, len(modalities)), 1.6 + 0.6 * max(1, len(clip_ids)))
    fig.subplots_adjust(
        left=0.3 / max(1, len(modalities)), right=0.9, bottom=0.2, top=0.8, wspace=0.55
    )
    if title:
        fig.suptitle(figures.heading(title), fontsize=10)
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
    return figures.save(fig, path)
