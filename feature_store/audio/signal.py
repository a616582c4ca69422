"""Audio decoding and the paper's two spectrogram kinds.

``decode_audio`` reads a clip's audio track with PyAV, mixed down to mono and resampled to 16 kHz;
``speech_spectrogram`` is the paper's speech spectrogram (Hamming window of 40 ms, shift 10 ms,
log magnitude, the 200 lowest-frequency bins) and ``logmel_deltas`` the second audio variant
(log-Mel spectrogram stacked with its deltas and delta-deltas). ``SPECTROGRAMS`` maps a recipe's
``spectrogram`` name to the function that computes it.

    >>> samples = decode_audio("clip.avi")          # float32 [n] at 16 kHz, None without audio
    >>> speech_spectrogram(samples).shape            # (200, frames), one frame per 10 ms
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import av
import librosa
import numpy as np
import scipy.sparse

from feature_store.errors import StoreError

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 0.040
SHIFT_SECONDS = 0.010
SPEECH_BINS = 200
# log(0) is -inf; this floor keeps silence finite (about -230 dB of magnitude) so silence is valid.
LOG_FLOOR = 1e-10


class AudioDecodeError(StoreError):
    """A clip's audio stream exists but cannot be decoded (corrupt or truncated)."""


def window_and_hop(sample_rate: int) -> tuple[int, int]:
    """The paper's 40 ms window and 10 ms shift, in samples at ``sample_rate``."""
    return round(WINDOW_SECONDS * sample_rate), round(SHIFT_SECONDS * sample_rate)


def decode_audio(
    path: str | os.PathLike[str], *, sample_rate: int = SAMPLE_RATE
) -> np.ndarray | None:
    """The first audio stream of ``path`` as mono float32 samples at ``sample_rate``.

    Returns None when the file has no audio stream (a valid clip, kept with zero audio vectors);
    raises ``AudioDecodeError`` naming the file when the stream cannot be decoded.
    """
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise AudioDecodeError(f"{path}: cannot open ({exc})") from None
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        # Packed float32, one channel: to_ndarray() gives [1, n] and the mixdown is FFmpeg's.
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioDecodeError(f"{path}: corrupt audio stream ({exc})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if not np.all(np.isfinite(samples)):
        raise AudioDecodeError(f"{path}: audio stream decodes to NaN or Inf samples")
    return samples.astype(np.float32, copy=False)


def _pad_to_window(samples: np.ndarray, window: int) -> np.ndarray:
    """A clip shorter than one window is zero-padded to one window, so it yields one frame."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if len(samples) < window:
        samples = np.pad(samples, (0, window - len(samples)))
    return samples


def _stft(samples: np.ndarray, sample_rate: int, *, min_samples: int = 0) -> np.ndarray:
    """Complex STFT ``[window // 2 + 1, frames]``: Hamming window of 40 ms, shift 10 ms, FFT length
    = window length (640 at 16 kHz: 25 Hz per bin), frames not centred, so there are
    ``1 + (n - window) // shift`` of them; a shorter clip is zero-padded to one window (or to
    ``min_samples``)."""
    window, hop = window_and_hop(sample_rate)
    samples = _pad_to_window(samples, max(window, min_samples))
    return librosa.stft(
        samples, n_fft=window, hop_length=hop, win_length=window, window="hamming", center=False
    )


def speech_spectrogram(
    samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *, bins: int = SPEECH_BINS
) -> np.ndarray:
    """Log-magnitude STFT ``[bins, frames]`` (float32): Hamming 40 ms, shift 10 ms, lowest bins
    (200 bins of 25 Hz reach 5 kHz at 16 kHz, the band that carries speech)."""
    window, _ = window_and_hop(sample_rate)
    if bins > window // 2 + 1:
        raise StoreError(f"speech spectrogram: {bins} bins exceed the {window // 2 + 1} FFT bins")
    # Cut before abs and log: the discarded upper bins never cost either.
    return np.log(np.abs(_stft(samples, sample_rate)[:bins]) + LOG_FLOOR).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> scipy.sparse.csr_matrix:
    # Each Mel filter spans a few FFT bins: as a sparse matrix the product costs a fifth of the
    # STFT instead of more than the STFT itself.
    return scipy.sparse.csr_matrix(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels))


def logmel_deltas(
    samples: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    n_mels: int = 128,
    delta_width: int = 9,
) -> np.ndarray:
    """Log-Mel spectrogram with its deltas and delta-deltas: ``[3, n_mels, frames]`` float32.

    Same framing as ``speech_spectrogram``; the Mel power spectrogram equals librosa's
    ``melspectrogram`` with that framing. Deltas are librosa's (Savitzky-Golay derivative over
    ``delta_width`` frames, edges interpolated); a clip with fewer frames than ``delta_width`` is
    zero-padded to that many first.
    """
    window, hop = window_and_hop(sample_rate)
    power = np.abs(_stft(samples, sample_rate, min_samples=window + (delta_width - 1) * hop)) ** 2
    log_mel = np.log(_mel_filters(sample_rate, window, n_mels) @ power + LOG_FLOOR)
    delta = librosa.feature.delta(log_mel, width=delta_width, order=1)
    delta2 = librosa.feature.delta(log_mel, width=delta_width, order=2)
    return np.stack([log_mel, delta, delta2]).astype(np.float32)


def speech_input(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, **_: object) -> np.ndarray:
    """The speech spectrogram as a one-channel image ``[1, 200, frames]`` for the CNN."""
    return speech_spectrogram(samples, sample_rate)[None]


def logmel_input(
    samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *, n_mels: int = 128, **_: object
) -> np.ndarray:
    """The log-Mel stack as a three-channel image ``[3, n_mels, frames]`` for the CNN."""
    return logmel_deltas(samples, sample_rate, n_mels=n_mels)


# name in a recipe -> (function giving a [channels, height, frames] image, its channel count)
SPECTROGRAMS: dict[str, tuple[Callable[..., np.ndarray], int]] = {
    "speech": (speech_input, 1),
    "logmel": (logmel_input, 3),
}


def spectrogram_image(
    kind: str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *, n_mels: int = 128
) -> np.ndarray:
    """The CNN input ``[channels, height, frames]`` of spectrogram ``kind`` for ``samples``."""
    try:
        function, _ = SPECTROGRAMS[kind]
    except KeyError:
        raise StoreError(
            f"unknown spectrogram {kind!r}; known: {', '.join(sorted(SPECTROGRAMS))}"
        ) from None
    return function(samples, sample_rate, n_mels=n_mels)


def clip_image(path: str | os.PathLike[str], kind: str, *, n_mels: int = 128) -> np.ndarray | None:
    """Decode ``path`` and compute its spectrogram image; None when it has no audio track."""
    samples = decode_audio(path)
    if samples is None:
        return None
    return spectrogram_image(kind, samples, n_mels=n_mels)
