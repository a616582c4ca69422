"""WavLM, HuBERT and wav2vec 2.0 as store encoders: one vector per 20 ms frame.

A clip, decoded to the feature extractor's rate (16 kHz for all three), goes through the release's
own ``Wav2Vec2FeatureExtractor`` (``preprocessor_config.json``: with ``do_normalize`` it is
standardised to zero mean and unit variance over the whole clip, as fairseq normalises a whole
utterance before cropping it), then through the model with ``output_hidden_states=True``. In
transformers 5 ``hidden_states[0]`` is the transformer's input (the projected CNN features plus the
convolutional position embedding, layer-normed in the base layout, not in the "stable layer norm"
layout of the large models) and ``hidden_states[N]`` the output of layer N (the large models'
final LayerNorm is not applied to it). ``layer: N`` keeps one of them, ``layers: weighted`` the
weighted mean of all ``num_hidden_layers + 1``. Layers above N are never run.

The CNN turns ``n`` samples into ``floor((n - R) / S) + 1`` frames (receptive field R = 400,
stride S = 320 samples: 20 ms). A clip longer than ``chunk_seconds`` runs in chunks that start
every ``C`` samples (C a multiple of S) and read ``C + R - S``: every chunk yields exactly the
frames the whole clip's CNN would, so the frame count and the CNN features do not change; only the
transformer (and its convolutional position embedding) sees one chunk at a time, which bounds
memory (attention grows with the square of the chunk's frames) and limits the context. A clip
shorter than one chunk is one forward pass, the same as the unchunked model's. ``pool_ms``
averages every ``pool_ms / 20`` consecutive frames (the last group may be shorter).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from feature_store.audio.encoder_specs import SPEECH_KINDS, SpeechEncoderSpec
from feature_store.audio.encoders import AudioEncoder, average_pool, register_encoder
from feature_store.audio.pretrained import (
    CONFIG_FILE,
    load_feature_extractor,
    load_model,
    provenance,
    read_config,
    weight_files,
)
from feature_store.weights import WeightsError

# recipe kind (= the config's model_type) -> the transformers class of the bare model
MODEL_CLASSES = {"wavlm": "WavLMModel", "hubert": "HubertModel", "wav2vec2": "Wav2Vec2Model"}


def receptive_field(kernels: list[int], strides: list[int]) -> tuple[int, int]:
    """``(R, S)``: samples one frame of the convolution stack sees, and samples between frames."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * jump
        jump *= stride
    return field, jump


@register_encoder(*SPEECH_KINDS)
class SpeechEncoder(AudioEncoder):
    """A self-supervised speech model's hidden states, frame by frame."""

    def __init__(self, spec: SpeechEncoderSpec, device: Any = "cpu") -> None:
        import transformers

        folder = spec.model
        folder_config = read_config(folder, (spec.kind,), spec.kind)
        files = weight_files(folder)
        self.extractor = load_feature_extractor(transformers.Wav2Vec2FeatureExtractor, folder)
        model = load_model(getattr(transformers, MODEL_CLASSES[spec.kind]), folder, files)
        config = model.config
        self.sample_rate = int(self.extractor.sampling_rate)
        self.field, self.stride = receptive_field(config.conv_kernel, config.conv_stride)
        hidden_states = config.num_hidden_layers + 1
        where = folder / CONFIG_FILE
        if spec.layer is not None and spec.layer >= hidden_states:
            raise WeightsError(
                f"{where}: {config.num_hidden_layers} layers, so layer is 0..{hidden_states - 1}, "
                f"not {spec.layer}"
            )
        self.layer, self.weights = spec.layer, spec.weights
        if self.weights is not None and len(self.weights) != hidden_states:
            raise WeightsError(
                f"{where}: {config.num_hidden_layers} layers give {hidden_states} hidden states "
                f"(the input and every layer's output), but layer_weights has {len(self.weights)}"
            )
        frame_ms = 1000 * self.stride / self.sample_rate
        pool_ms = spec.pool_ms or frame_ms
        self.pool = pool_ms / frame_ms
        if abs(self.pool - round(self.pool)) > 1e-9:
            raise WeightsError(
                f"{where}: frames every {frame_ms:g} ms, so pool_ms must be a multiple of it, "
                f"not {spec.pool_ms}"
            )
        self.pool = round(self.pool)
        if self.layer is not None:
            # Layers above the chosen one cannot change it; the first layer always runs, since
            # hidden_states[0] is recorded as its input.
            del model.encoder.layers[max(self.layer, 1) :]
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.chunk = (
            max(1, round(spec.chunk_seconds * self.sample_rate / self.stride)) * self.stride
        )
        self.dim = int(config.hidden_size)
        weights = None if self.weights is None else [round(w, 8) for w in self.weights]
        self.meta = {
            "backbone": spec.kind,
            "enhancement": f"layer {spec.layer}"
            if spec.layer is not None
            else f"weighted mean of {hidden_states} hidden states",
            "sample_rate": self.sample_rate,
            "encoder": {
                "kind": spec.kind,
                **provenance(folder, folder_config, files, model, self.extractor),
                "layer": spec.layer,
                "layer_weights": weights,
                "hidden_states": hidden_states,
                "stable_layer_norm": bool(getattr(config, "do_stable_layer_norm", False)),
                "frame_ms": frame_ms,
                "pool_ms": pool_ms,
                "receptive_field_samples": self.field,
                "chunk_seconds": self.chunk / self.sample_rate,
                "chunk_samples_read": self.chunk + self.field - self.stride,
                "preprocessing": {
                    "decoder": "PyAV, mono mixdown and resampling by FFmpeg",
                    "sample_rate": self.sample_rate,
                    "do_normalize": bool(self.extractor.do_normalize),
                    "normalised_over": "the whole clip" if self.extractor.do_normalize else None,
                },
            },
        }

    def frames(self, num_samples: int) -> int:
        """CNN frames of a clip (one at least: a shorter clip is zero-padded to one field)."""
        return (max(num_samples, self.field) - self.field) // self.stride + 1

    def count(self, num_samples: int) -> int:
        return math.ceil(self.frames(num_samples) / self.pool)

    def encode(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if len(samples) < self.field:
            samples = np.pad(samples, (0, self.field - len(samples)))
        values = self.extractor(samples, sampling_rate=self.sample_rate, return_tensors="np")
        values = np.asarray(values["input_values"][0], dtype=np.float32)  # (n,) normalised
        # Chunks start where at least one whole frame starts; each reads R - S samples past its
        # C so that its last frame is the one the whole clip's CNN has there.
        starts = range(0, len(values) - self.field + 1, self.chunk)
        span = self.chunk + self.field - self.stride
        frames = np.concatenate([self._forward(values[s : s + span]) for s in starts])
        assert len(frames) == self.frames(len(samples)), (len(frames), len(samples))
        return average_pool(frames, self.pool)

    @torch.inference_mode()
    def _forward(self, values: np.ndarray) -> np.ndarray:
        """``[T, D]`` chosen hidden state (or weighted mean) of one chunk."""
        inputs = torch.from_numpy(values)[None].to(self.device)  # (1, n)
        states = self.model(inputs, output_hidden_states=True).hidden_states  # L+1 x (1, T, D)
        if self.weights is None:
            chosen = states[self.layer]
        else:
            chosen = sum(w * state for w, state in zip(self.weights, states))
        return chosen[0].float().cpu().numpy()
