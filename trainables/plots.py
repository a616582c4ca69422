"""PNG plots of a trial (matplotlib, Agg backend): the validation confusion matrix and the
per-frame attention weights of a few validation clips. ``search`` logs both to MLflow; the
``fit`` command writes them beside ``scores.npz``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402


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
    """Row-normalised confusion matrix (recall on the diagonal), counts in each cell."""
    counts = confusion_matrix(labels, np.asarray(probs).argmax(axis=1), len(classes))
    rows = counts.sum(axis=1, keepdims=True)
    rates = counts / np.where(rows > 0, rows, 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
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
    fig.colorbar(image, ax=ax, fraction=0.046, label="recall")
    return _save(fig, path)


def plot_attention(attention: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """One row per clip, one column per modality present: the weight of each frame/vector."""
    clip_ids = list(attention.get("clip_ids", []))
    modalities = [m for m in ("visual", "audio") if len(attention.get(m, [])) > 0]
    rows, cols = max(1, len(clip_ids)), max(1, len(modalities))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 1.8 * rows), squeeze=False)
    if not modalities:
        axes[0, 0].text(0.5, 0.5, "no attention weights", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for row, clip_id in enumerate(clip_ids):
        for col, modality in enumerate(modalities):
            ax = axes[row, col]
            weights = np.asarray(attention[modality][row])
            if len(weights) == 0:
                ax.text(0.5, 0.5, "no frames", ha="center", va="center", transform=ax.transAxes)
                ax.set_yticks([])
            else:
                ax.bar(
                    np.arange(len(weights)), weights, color="tab:blue" if col == 0 else "tab:orange"
                )
                ax.axhline(1.0 / len(weights), color="grey", lw=0.8, ls="--")  # uniform weight
            ax.set_title(f"{clip_id} · {modality}", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle("attention weights per frame (dashed: uniform)", fontsize=9)
    return _save(fig, path)


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
