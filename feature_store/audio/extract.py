"""Audio stores: the extractor that the build engine runs on every clip.

A clip's audio track -> spectrogram image -> standardised fixed-length segments -> the trained
AlexNet's last pooling map per segment -> ``H·W`` vectors of 256 dims per segment, the segments
in time order. A clip without an audio track keeps zero vectors and ``has_audio=False`` in
``clips.parquet``, so it still pairs with its visual store. Registered for ``modality: audio``
(the package ``feature_store.audio`` imports this module)::

    python -m feature_store train-audio --manifest CSV --recipe conf/store/audio-logmel.yaml \
        --out checkpoints/audio-logmel.pt
    python -m feature_store build --manifest CSV --recipe conf/store/audio-logmel.yaml \
        --out stores/audio/logmel
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from feature_store.audio.checkpoint import checkpoint_config, load_weights
from feature_store.audio.cnn import FEATURE_DIM, AlexNet, segment, segment_vectors, standardize
from feature_store.audio.encoder_extract import EncoderExtractor
from feature_store.audio.plots import plot_spectrograms, preview_db
from feature_store.audio.recipe import AudioRecipe
from feature_store.audio.signal import (
    SPECTROGRAMS,
    AudioDecodeError,
    decode_audio,
    spectrogram_image,
)
from feature_store.devices import resolve_device
from feature_store.extractor import ClipError, Extractor, register_extractor
from feature_store.weights import WeightsError

PREVIEW_FRAMES = 400  # 4 s of spectrogram on spectrograms.png


class AudioExtractor(Extractor):
    """Spectrogram segments through the AlexNet's convolutional part, on one worker."""

    preview_file = "spectrograms.png"

    def __init__(self, recipe: AudioRecipe) -> None:
        self.recipe = recipe
        self.dim = FEATURE_DIM
        self.device = resolve_device(recipe.device)
        _, channels = SPECTROGRAMS[recipe.spectrogram]
        torch.manual_seed(recipe.train.seed)  # the same random weights in every worker
        self.model = AlexNet(channels, fc_dim=recipe.fc_dim)
        if recipe.checkpoint is not None:
            extra = load_weights(self.model, recipe.checkpoint, head=True, features_only=True)
            trained_with = extra.get("config")
            expected = checkpoint_config(recipe)
            if isinstance(trained_with, dict):
                differs = [k for k in expected if trained_with.get(k) != expected[k]]
                if differs:
                    key = differs[0]
                    raise WeightsError(
                        f"{recipe.checkpoint}: trained with {key}={trained_with.get(key)!r} but "
                        f"the recipe says {key}={expected[key]!r}"
                    )
            pretrain = recipe.pretrain or f"train-audio ({extra.get('recipe', 'unknown recipe')})"
        elif recipe.allow_random_weights:
            pretrain = "none (random weights)"
        else:
            raise WeightsError(
                f"recipe {recipe.name!r}: no checkpoint; train one with `python -m feature_store "
                "train-audio`, or set allow_random_weights: true"
            )
        self.model.to(self.device).eval()
        self.meta = {
            "backbone": "alexnet",
            "pretrain": pretrain,
            "enhancement": recipe.spectrogram,
            "checkpoint": str(recipe.checkpoint) if recipe.checkpoint else None,
            "random_weights": recipe.checkpoint is None,
            "sample_rate": 16_000,
            "segment_frames": recipe.segment_frames,
            "segment_hop": recipe.hop,
        }
        self._preview: np.ndarray | None = None

    def extract(self, clip_id: str, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        recipe = self.recipe
        try:
            samples = decode_audio(path)
        except AudioDecodeError as exc:
            raise ClipError(clip_id, str(exc)) from None
        if samples is None:
            self._preview = None
            empty = np.zeros((0, self.dim), np.float32)
            return empty, {"has_audio": False, "audio_seconds": 0.0, "segments": 0}
        image = spectrogram_image(recipe.spectrogram, samples, n_mels=recipe.n_mels)
        segments = segment(standardize(image), recipe.segment_frames, recipe.hop)
        self._preview = preview_db(image, recipe.spectrogram, PREVIEW_FRAMES)
        vectors = segment_vectors(self.model, segments, batch_size=recipe.batch_size)
        info = {
            "has_audio": True,
            "audio_seconds": round(len(samples) / 16_000, 3),
            "segments": len(segments),
        }
        return vectors, info

    def preview(self) -> np.ndarray | None:
        return self._preview

    def save_previews(self, path: Path, previews: list[tuple[str, np.ndarray]]) -> None:
        # A work file written before previews were dB data holds an RGB image: left out.
        spectrograms = [(clip_id, image) for clip_id, image in previews if image.ndim == 2]
        if spectrograms:
            plot_spectrograms(
                path, spectrograms, self.recipe.spectrogram, self.recipe.name or path.parent.name
            )


@register_extractor("audio")
def make_audio_extractor(recipe: AudioRecipe) -> Extractor:
    """The AlexNet's extractor, or a released encoder's for a recipe with ``encoder:``."""
    return AudioExtractor(recipe) if recipe.encoder is None else EncoderExtractor(recipe)
