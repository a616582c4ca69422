"""Pictures of the audio jobs: ``train-audio``'s loss and accuracy curves (logged to MLflow) and a
spectrogram channel as an RGB image for a store's contact sheet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("train_loss", "val_loss"):
        loss_axis.plot(epochs, [row[key] for row in history], label=key)
    for key in ("train_acc", "val_acc"):
        acc_axis.plot(epochs, [row[key] for row in history], label=key)
    loss_axis.set_xlabel("epoch")
    acc_axis.set_xlabel("epoch")
    loss_axis.legend()
    acc_axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render_spectrogram(channel: np.ndarray) -> np.ndarray:
    """A spectrogram channel as an RGB image, low frequencies at the bottom (viridis)."""
    from matplotlib import colormaps

    low, high = np.percentile(channel, [2, 98])
    scaled = np.clip((channel - low) / max(high - low, 1e-6), 0, 1)[::-1]
    return (colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)
