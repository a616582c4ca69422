"""Audio stores from a released encoder (a recipe's ``encoder:`` section): the extractor the build
engine runs on every clip.

A clip's audio track is decoded with PyAV to mono at the encoder's rate (16 kHz for WavLM, HuBERT
and wav2vec 2.0, 48 kHz for CLAP) and encoded into ``[n, dim]`` vectors (frames or windows, in
time order). A clip without an audio track keeps zero vectors and ``has_audio=False`` in
``clips.parquet``, as with the AlexNet, so it still pairs with its visual store::

    python -m feature_store build --manifest CSV --recipe conf/store/wavlm-base-l6.yaml \
        --out stores/audio/wavlm-base-l6
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from feature_store.audio.encoders import make_encoder
from feature_store.audio.plots import plot_spectrograms, preview_db
from feature_store.audio.recipe import AudioRecipe
from feature_store.audio.signal import AudioDecodeError, decode_audio, speech_input
from feature_store.devices import resolve_device
from feature_store.extractor import ClipError, Extractor

PREVIEW_SECONDS = 4.0  # of speech spectrogram on spectrograms.png, as for AlexNet stores


class EncoderExtractor(Extractor):
    """A released encoder's vectors of every clip, on one worker."""

    preview_file = "spectrograms.png"

    def __init__(self, recipe: AudioRecipe) -> None:
        assert recipe.encoder is not None
        self.recipe = recipe
        self.encoder = make_encoder(recipe.encoder, resolve_device(recipe.device))
        self.dim = self.encoder.dim
        self.meta = {"pretrain": recipe.pretrain or recipe.encoder.model.name, **self.encoder.meta}
        self._preview: np.ndarray | None = None

    def extract(self, clip_id: str, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        rate = self.encoder.sample_rate
        try:
            samples = decode_audio(path, sample_rate=rate)
        except AudioDecodeError as exc:
            raise ClipError(clip_id, str(exc)) from None
        if samples is None:
            self._preview = None
            return np.zeros((0, self.dim), np.float32), {"has_audio": False, "audio_seconds": 0.0}
        vectors = self.encoder.encode(samples)
        # The speech spectrogram's bins are 25 Hz and its frames 10 ms at any rate.
        head = samples[: int((PREVIEW_SECONDS + 0.04) * rate)]
        self._preview = preview_db(speech_input(head, rate), "speech", int(PREVIEW_SECONDS * 100))
        return vectors, {"has_audio": True, "audio_seconds": round(len(samples) / rate, 3)}

    def preview(self) -> np.ndarray | None:
        return self._preview

    def save_previews(self, path: Path, previews: list[tuple[str, np.ndarray]]) -> None:
        plot_spectrograms(path, previews, "speech", self.recipe.name or path.parent.name)
