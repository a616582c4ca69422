"""Audio stores: the audio recipe and the extractor that the build engine runs on every clip.

A clip's audio track -> spectrogram image -> standardised fixed-length segments -> the trained
AlexNet's last pooling map per segment -> ``H·W`` vectors of 256 dims per segment, the segments
in time order. A clip without an audio track keeps zero vectors and ``has_audio=False`` in
``clips.parquet``, so it still pairs with its visual store. Registered for ``modality: audio``
(``feature_store.audio`` imports this module)::

    python -m feature_store train-audio --manifest CSV --recipe conf/store/audio-logmel.yaml \
        --out checkpoints/audio-logmel.pt
    python -m feature_store build --manifest CSV --recipe conf/store/audio-logmel.yaml \
        --out stores/audio/logmel
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from feature_store.audio import SPECTROGRAMS, AudioDecodeError, decode_audio, spectrogram_image
from feature_store.audio_cnn import (
    FEATURE_DIM,
    AlexNet,
    WeightsError,
    checkpoint_config,
    load_weights,
    segment,
    segment_vectors,
    standardize,
)
from feature_store.devices import resolve_device
from feature_store.extractor import ClipError, Extractor, register_extractor
from feature_store.recipe import RecipeBase, register_recipe

PREVIEW_FRAMES = 400  # 4 s of spectrogram on the contact sheet


def _absolute(value: Path | None) -> Path | None:
    # Resolved at load time so worker processes (and store.json) see the same file.
    return None if value is None else value.expanduser().resolve()


class AudioTrainSpec(BaseModel):
    """How ``train-audio`` trains the AlexNet (Adam or SGD, cosine learning rate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(30, ge=1, le=10_000, description="passes over the train segments")
    batch_size: int = Field(64, ge=1, le=4096, description="segments per optimiser step")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="adam, or sgd with momentum")
    lr: float = Field(1e-4, gt=0, le=10, description="initial learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (sgd only)")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 weight decay")
    seed: int = Field(0, description="seeds initialisation and batch order")
    init_weights: Path | None = Field(
        None, description="ImageNet-style AlexNet state dict to start from (head dropped)"
    )
    experiment: str = Field("train-audio", min_length=1, description="MLflow experiment name")

    @field_validator("init_weights")
    @classmethod
    def _resolve(cls, value: Path | None) -> Path | None:
        return _absolute(value)


@register_recipe("audio")
class AudioRecipe(RecipeBase):
    """Audio clips -> AlexNet last-pooling vectors (paper: Audio Features)."""

    modality: Literal["audio"] = Field(description="always audio")
    spectrogram: Literal["speech", "logmel"] = Field(
        description="speech: log-magnitude STFT, 200 bins; logmel: log-Mel + deltas + delta-deltas"
    )
    n_mels: int = Field(128, ge=16, le=256, description="Mel bands (logmel only)")
    segment_frames: int = Field(
        100, ge=32, le=2000, description="frames (10 ms each) per CNN input segment"
    )
    segment_hop: int | None = Field(
        None, ge=1, description="frames between segment starts; default segment_frames"
    )
    fc_dim: int = Field(4096, ge=8, le=8192, description="width of AlexNet's hidden FC layers")
    checkpoint: Path | None = Field(
        None, description="weights for feature extraction: train-audio's output; relative to cwd"
    )
    pretrain: str | None = Field(
        None, description="what the checkpoint was trained on, for store.json"
    )
    allow_random_weights: bool = Field(
        False, description="build without a checkpoint (random weights); store.json records it"
    )
    batch_size: int = Field(64, ge=1, le=4096, description="segments per forward pass (build)")
    train: AudioTrainSpec = Field(default_factory=AudioTrainSpec, description="train-audio")

    @field_validator("checkpoint")
    @classmethod
    def _resolve(cls, value: Path | None) -> Path | None:
        return _absolute(value)

    @model_validator(mode="after")
    def _hop_keeps_every_frame(self) -> AudioRecipe:
        if self.segment_hop is not None and self.segment_hop > self.segment_frames:
            raise ValueError("segment_hop must not exceed segment_frames (frames would be lost)")
        return self

    @property
    def hop(self) -> int:
        """Frames between segment starts."""
        return self.segment_hop or self.segment_frames


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
        self._preview = _render(image[0, :, :PREVIEW_FRAMES])
        vectors = segment_vectors(self.model, segments, batch_size=recipe.batch_size)
        info = {
            "has_audio": True,
            "audio_seconds": round(len(samples) / 16_000, 3),
            "segments": len(segments),
        }
        return vectors, info

    def preview(self) -> np.ndarray | None:
        return self._preview


def _render(channel: np.ndarray) -> np.ndarray:
    """A spectrogram channel as an RGB image, low frequencies at the bottom (viridis)."""
    from matplotlib import colormaps

    low, high = np.percentile(channel, [2, 98])
    scaled = np.clip((channel - low) / max(high - low, 1e-6), 0, 1)[::-1]
    return (colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)


@register_extractor("audio")
def make_audio_extractor(recipe: AudioRecipe) -> AudioExtractor:
    return AudioExtractor(recipe)
