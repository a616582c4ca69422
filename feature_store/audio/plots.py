"""Pictures of the audio jobs, in the house style of ``avcore.figures``: ``train-audio``'s loss and
accuracy curves (logged to MLflow) and a store's spectrogram previews (``spectrograms.png``: the
first seconds of a few clips, time in seconds, frequency in Hz or Mel bands, one dB colour bar).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from avcore import figures
from feature_store.audio.signal import SAMPLE_RATE, SHIFT_SECONDS, window_and_hop

# The colour scale spans this far below the loudest cell: quieter is all one colour (silence is
# -200 dB here, ``LOG_FLOOR``), as librosa's ``top_db`` does.
DYNAMIC_RANGE_DB = 80.0


def plot_curves(history: list[dict[str, float]], path: Path) -> Path:
    epochs = [row["epoch"] for row in history]
    fig = figures.new_figure(9.0, 3.5)
    loss_axis, acc_axis = fig.subplots(1, 2)
    for key in ("train_loss", "val_loss"):
        loss_axis.plot(epochs, [row[key] for row in history], label=key)
    for key in ("train_acc", "val_acc"):
        acc_axis.plot(epochs, [row[key] for row in history], label=key)
    loss_axis.set_xlabel("epoch")
    acc_axis.set_xlabel("epoch")
    loss_axis.legend()
    acc_axis.legend()
    fig.tight_layout()
    return figures.save(fig, path)


def preview_db(image: np.ndarray, kind: str, frames: int) -> np.ndarray:
    """The first ``frames`` of a spectrogram image's first channel in dB, float32 ``[bins,
    frames]``: the speech spectrogram is a natural-log magnitude (× 20/ln 10), the log-Mel one a
    natural-log power (× 10/ln 10)."""
    scale = 20.0 if kind == "speech" else 10.0
    return (image[0, :, :frames] * (scale / math.log(10))).astype(np.float32)


def plot_spectrograms(
    path: Path, previews: list[tuple[str, np.ndarray]], kind: str, store: str
) -> Path:
    """``preview_db`` images of a few clips, two to a row, on one dB scale."""
    columns = min(2, len(previews))
    rows = math.ceil(len(previews) / columns)
    width, height = 5.0 * columns + 1.6, 1.0 + 2.1 * rows
    fig = figures.new_figure(width, height)
    # Margins fixed in inches: matplotlib's constrained layout doubled the drawing time.
    fig.subplots_adjust(
        left=0.8 / width,
        right=1 - 1.45 / width,
        bottom=0.6 / height,
        top=1 - 0.6 / height,
        wspace=0.06,
        hspace=0.45,
    )
    axes = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    loudest = max(float(np.percentile(image, 99.5)) for _, image in previews)
    bins = previews[0][1].shape[0]
    if kind == "speech":
        step = SAMPLE_RATE / window_and_hop(SAMPLE_RATE)[0]  # Hz per FFT bin
        low, high, axis_label = -0.5 * step, (bins - 0.5) * step, "frequency (Hz)"
    else:
        low, high, axis_label = -0.5, bins - 0.5, "Mel band (centre Hz)"
    for ax, (clip_id, image) in zip(axes.flat, previews):
        shown = ax.imshow(
            image,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=loudest - DYNAMIC_RANGE_DB,
            vmax=loudest,
            extent=(0.0, image.shape[1] * SHIFT_SECONDS, low, high),
            interpolation="nearest",
        )
        ax.set_title(figures.plain(clip_id), fontsize=8)
    seconds = max(image.shape[1] for _, image in previews) * SHIFT_SECONDS
    axes[0, 0].set_xlim(0.0, seconds)  # shared: each imshow would set its own clip's length
    for index, ax in enumerate(axes.flat):
        if index >= len(previews):
            ax.set_axis_off()
        elif index + columns >= len(previews):  # the last panel of its column
            ax.set_xlabel("time (s)")
            ax.xaxis.set_tick_params(labelbottom=True)
    if kind != "speech":
        _label_mel_bands(axes[0, 0], bins)
    for ax in axes[:, 0]:
        ax.set_ylabel(axis_label)
    fig.colorbar(
        shown,
        cax=fig.add_axes((1 - 1.2 / width, 0.6 / height, 0.18 / width, 1 - 1.2 / height)),
        extend="min",
        label="magnitude (dB)" if kind == "speech" else "Mel power (dB)",
    )
    fig.suptitle(
        figures.heading(
            f"{store}: {kind} spectrograms (up to the first {seconds:g} s of each clip)"
        ),
        fontsize=10,
    )
    return figures.save(fig, path)


def _label_mel_bands(ax, bins: int) -> None:
    """Mel band ticks labelled with their centre frequency (librosa's filters centre band ``i`` on
    the ``i + 1``-th of ``bins + 2`` Mel-spaced frequencies up to Nyquist)."""
    import librosa

    centres = librosa.mel_frequencies(bins + 2, fmin=0.0, fmax=SAMPLE_RATE / 2)[1:-1]
    ticks = np.linspace(0, bins - 1, 5).round().astype(int)
    ax.set_yticks(ticks, [f"{centres[t]:.0f}" for t in ticks])
