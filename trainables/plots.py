"""PNG plots of a trial (matplotlib, Agg backend): the validation confusion matrix and the
per-frame attention weights of a few validation clips. ``search`` logs both to MLflow; the
``fit`` command writes them beside ``scores.npz``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Plots are drawn once per trial, off the trial's path but on the search's: fixed margins instead
# of tight_layout and one heatmap per modality instead of a subplot per clip keep each under ~0.3 s.


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def plot_confusion(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "",
) -> Path:
    """Row-normalised confusion matrix (recall on the diagonal), rate and count in each cell."""
    counts = confusion_matrix(labels, np.asarray(probs).argmax(axis=1), len(classes))
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


def plot_attention(attention: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """One heatmap per modality present: a row per clip, a cell per frame/vector, coloured by the
    frame's weight relative to uniform (weight × number of frames; 1 = uniform, white)."""
    clip_ids = list(attention.get("clip_ids", []))
    modalities = [m for m in ("visual", "audio") if len(attention.get(m, [])) > 0]
    fig = Figure(figsize=(5.0 * max(1, len(modalities)), 1.2 + 0.45 * max(1, len(clip_ids))))
    fig.subplots_adjust(
        left=0.2 / max(1, len(modalities)), right=0.9, bottom=0.2, top=0.82, wspace=0.35
    )
    if not modalities:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no attention weights", ha="center", va="center")
        ax.set_axis_off()
    for col, modality in enumerate(modalities):
        ax = fig.add_subplot(1, len(modalities), col + 1)
        weights = [np.asarray(w, dtype=float) for w in attention[modality]]
        width = max([len(w) for w in weights] + [1])
        relative = np.full((len(weights), width), np.nan)  # NaN: no such frame (shown blank)
        for row, w in enumerate(weights):
            relative[row, : len(w)] = w * len(w)
        image = ax.imshow(
            relative, aspect="auto", cmap="RdBu_r", vmin=0.0, vmax=2.0, interpolation="nearest"
        )
        ax.set_yticks(range(len(clip_ids)), clip_ids, fontsize=7)
        ax.set_xlabel(f"{modality} frame / vector", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.set_title(f"{modality} attention (× uniform)", fontsize=9)
        if col == len(modalities) - 1:
            fig.colorbar(image, ax=ax, fraction=0.04)
    return _save(fig, path)


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path
