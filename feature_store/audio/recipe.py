"""The audio recipe (``modality: audio``): which spectrogram, how it is cut into segments, the
AlexNet's width and checkpoint, and how ``train-audio`` trains it (``AudioTrainSpec``); or, with an
``encoder:`` section, a released foundation model instead of the AlexNet
(``feature_store.audio.encoder_specs``). Registers itself for ``modality: audio``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from feature_store.audio.encoder_specs import EncoderSpec
from feature_store.recipe import RecipeBase, register_recipe

# The AlexNet's settings: an encoder recipe takes none of them.
ALEXNET_KEYS = (
    "spectrogram", "n_mels", "segment_frames", "segment_hop", "fc_dim", "checkpoint",
    "allow_random_weights", "batch_size", "train",
)  # fmt: skip


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
    """Audio clips -> AlexNet last-pooling vectors (paper: Audio Features), or -> a released
    encoder's vectors (``encoder:``)."""

    modality: Literal["audio"] = Field(description="always audio")
    encoder: EncoderSpec | None = Field(
        None, description="a released model (wavlm, hubert, wav2vec2, clap) instead of the AlexNet"
    )
    spectrogram: Literal["speech", "logmel"] | None = Field(
        None,
        description="speech: log-magnitude STFT, 200 bins; logmel: log-Mel + deltas + "
        "delta-deltas (AlexNet recipes)",
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
        None, description="what the checkpoint or encoder was trained on, for store.json"
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
    def _alexnet_or_encoder(self) -> AudioRecipe:
        if self.encoder is not None:
            given = [key for key in ALEXNET_KEYS if key in self.model_fields_set]
            if given:
                raise ValueError(
                    f"{given[0]}: an AlexNet setting; a recipe with encoder: takes none of "
                    f"{', '.join(ALEXNET_KEYS)}"
                )
        elif self.spectrogram is None:
            raise ValueError("missing key 'spectrogram' (speech or logmel), or an encoder: section")
        return self

    @model_validator(mode="after")
    def _hop_keeps_every_frame(self) -> AudioRecipe:
        if self.segment_hop is not None and self.segment_hop > self.segment_frames:
            raise ValueError("segment_hop must not exceed segment_frames (frames would be lost)")
        return self

    @property
    def hop(self) -> int:
        """Frames between segment starts."""
        return self.segment_hop or self.segment_frames
