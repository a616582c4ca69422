"""The ``encoder:`` section of an audio recipe: a released foundation model read from a local folder
in the layout the Hugging Face Hub distributes (``config.json``, ``model.safetensors`` or
``pytorch_model.bin``, ``preprocessor_config.json``), instead of the paper's spectrogram AlexNet.

- ``kind: wavlm | hubert | wav2vec2``: one vector per 20 ms frame (the models' 320-sample stride at
  16 kHz) from one hidden layer (``layer: N``) or a weighted mean of all of them
  (``layers: weighted`` with ``layer_weights``), optionally averaged to a coarser stride
  (``pool_ms``); long clips run in chunks of ``chunk_seconds``.
- ``kind: clap``: LAION-CLAP's HTSAT audio tower, one embedding per window of ``window_seconds``
  every ``hop_seconds``.

Kept apart from ``AudioRecipe`` so the encoders can take their section without the recipe.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SPEECH_KINDS = ("wavlm", "hubert", "wav2vec2")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("model", check_fields=False)
    @classmethod
    def _resolve(cls, value: Path) -> Path:
        # Resolved at load time so worker processes (and store.json) see the same folder.
        return value.expanduser().resolve()


class SpeechEncoderSpec(_Section):
    """WavLM, HuBERT or wav2vec 2.0 through ``transformers``: per-frame hidden states."""

    kind: Literal["wavlm", "hubert", "wav2vec2"] = Field(description="the model family")
    model: Path = Field(description="the model's folder as the Hub has it; relative to cwd")
    layer: int | None = Field(
        None,
        ge=0,
        le=64,
        description="hidden_states index: 0 = the transformer's input (projected CNN features + "
        "convolutional position embedding), N = the output of transformer layer N",
    )
    layers: Literal["weighted"] | None = Field(
        None, description="weighted: the weighted mean of every hidden state (layer_weights)"
    )
    layer_weights: tuple[float, ...] | None = Field(
        None, description="one weight >= 0 per hidden state (layers + 1), normalised to sum 1"
    )
    pool_ms: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="average consecutive frames to one vector per pool_ms (a multiple of the "
        "model's 20 ms frame); default: every frame",
    )
    chunk_seconds: float = Field(
        30.0,
        ge=1,
        le=600,
        description="longer clips run in chunks of this length (bounded memory); the transformer "
        "then attends within a chunk only",
    )

    @model_validator(mode="after")
    def _one_layer_choice(self) -> SpeechEncoderSpec:
        if (self.layer is None) == (self.layers is None):
            raise ValueError("give either layer: N or layers: weighted (with layer_weights)")
        if self.layers == "weighted" and not self.layer_weights:
            raise ValueError("layers: weighted needs layer_weights (one per hidden state)")
        if self.layer_weights is not None and self.layers != "weighted":
            raise ValueError("layer_weights need layers: weighted")
        if self.layer_weights is not None:
            if any(w < 0 or not math.isfinite(w) for w in self.layer_weights):
                raise ValueError("layer_weights must be finite and >= 0")
            if sum(self.layer_weights) <= 0:
                raise ValueError("layer_weights must not all be 0")
        return self

    @property
    def weights(self) -> tuple[float, ...] | None:
        """``layer_weights`` normalised to sum 1."""
        if self.layer_weights is None:
            return None
        total = sum(self.layer_weights)
        return tuple(w / total for w in self.layer_weights)


class ClapSpec(_Section):
    """LAION-CLAP's audio tower through ``transformers``: one embedding per sliding window."""

    kind: Literal["clap"] = Field(description="clap")
    model: Path = Field(description="the model's folder as the Hub has it; relative to cwd")
    window_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        description="window length; at most the feature extractor's max_length_s (10 s), a "
        "shorter window is repeat-padded to it as the release pads short audio",
    )
    hop_seconds: float = Field(1.0, gt=0, le=60, description="seconds between window starts")
    embedding: Literal["projected", "pooled"] = Field(
        "projected",
        description="projected: audio_embeds in the joint audio-text space, L2-normalised as "
        "ClapModel.get_audio_features gives them (projection_dim); pooled: the HTSAT's "
        "pooler_output before the projection (hidden_size)",
    )
    batch_size: int = Field(8, ge=1, le=512, description="windows per forward pass")

    @model_validator(mode="after")
    def _hop_keeps_every_sample(self) -> ClapSpec:
        if self.hop_seconds > self.window_seconds:
            raise ValueError("hop_seconds must not exceed window_seconds (audio would be lost)")
        return self


EncoderSpec = Annotated[SpeechEncoderSpec | ClapSpec, Field(discriminator="kind")]
ENCODER_KINDS = (*SPEECH_KINDS, "clap")
