"""LAION-CLAP's audio tower as a store encoder: one embedding per sliding window.

The clip is decoded to the feature extractor's rate (48 kHz for the released CLAP models) and cut
into windows of ``window_seconds`` starting every ``hop_seconds`` (``1 + ceil((n - W) / H)``
windows; the last one, and a clip shorter than one window, may be shorter). Each window goes
through the release's own ``ClapFeatureExtractor`` on its own, as a single input: log-Mel
(``feature_size`` bands, ``fft_window_size`` Hann window, ``hop_length`` 10 ms) of the window
repeat-padded to ``max_length_s`` (10 s), with the release's ``truncation`` (``fusion``: the same
Mel four times and ``is_longer`` set, as the extractor does for any single input no longer than
10 s; ``rand_trunc``: one Mel). A window is never longer than ``max_length_s``, so no random crop
is ever taken. The windows then run through ``ClapAudioModelWithProjection``'s HTSAT in batches:
``embedding: projected`` is ``audio_embeds`` L2-normalised (what ``ClapModel.get_audio_features``
returns, the joint audio-text space), ``embedding: pooled`` the HTSAT's ``pooler_output``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from feature_store.audio.encoder_specs import ClapSpec
from feature_store.audio.encoders import AudioEncoder, register_encoder
from feature_store.audio.pretrained import (
    PREPROCESSOR_FILE,
    load_feature_extractor,
    load_model,
    provenance,
    read_config,
    weight_files,
)
from feature_store.weights import WeightsError

# A ClapModel folder (both towers, as laion/clap-htsat-* are) or the audio tower saved alone.
MODEL_TYPES = ("clap", "clap_audio_model")
# The feature extractor's settings that store.json records.
EXTRACTOR_SETTINGS = (
    "truncation", "padding", "max_length_s", "feature_size", "fft_window_size", "hop_length",
    "frequency_min", "frequency_max",
)  # fmt: skip


@register_encoder("clap")
class ClapEncoder(AudioEncoder):
    """Window embeddings of CLAP's HTSAT audio encoder."""

    def __init__(self, spec: ClapSpec, device: Any = "cpu") -> None:
        import transformers

        folder = spec.model
        folder_config = read_config(folder, MODEL_TYPES, "CLAP")
        files = weight_files(folder)
        self.extractor = load_feature_extractor(transformers.ClapFeatureExtractor, folder)
        model = load_model(transformers.ClapAudioModelWithProjection, folder, files)
        extractor = self.extractor
        self.sample_rate = int(extractor.sampling_rate)
        self.window = round(spec.window_seconds * self.sample_rate)
        self.hop = round(spec.hop_seconds * self.sample_rate)
        if self.window > extractor.nb_max_samples:
            raise WeightsError(
                f"{folder / PREPROCESSOR_FILE}: max_length_s is {extractor.max_length_s} s; a "
                f"window of {spec.window_seconds:g} s would be cropped at random"
            )
        self.embedding, self.batch_size = spec.embedding, spec.batch_size
        config = model.config
        self.dim = int(
            config.projection_dim if spec.embedding == "projected" else config.hidden_size
        )
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.meta = {
            "backbone": "clap",
            "enhancement": f"{spec.embedding} embedding of {spec.window_seconds:g} s windows every "
            f"{spec.hop_seconds:g} s",
            "sample_rate": self.sample_rate,
            "encoder": {
                "kind": "clap",
                **provenance(folder, folder_config, files, model, extractor),
                "embedding": "audio_embeds (L2-normalised)"
                if spec.embedding == "projected"
                else "pooler_output",
                "enable_fusion": bool(config.enable_fusion),
                "window_seconds": spec.window_seconds,
                "hop_seconds": spec.hop_seconds,
                "preprocessing": {
                    "decoder": "PyAV, mono mixdown and resampling by FFmpeg",
                    "sample_rate": self.sample_rate,
                    "per_window": "one feature-extractor call per window (a single input)",
                    **{key: getattr(extractor, key) for key in EXTRACTOR_SETTINGS},
                },
            },
        }

    def count(self, num_samples: int) -> int:
        return 1 + math.ceil(max(num_samples - self.window, 0) / self.hop)

    def windows(self, samples: np.ndarray) -> list[np.ndarray]:
        """The clip's windows in time order (an empty clip is one sample of silence)."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if len(samples) == 0:
            samples = np.zeros(1, np.float32)
        starts = [i * self.hop for i in range(self.count(len(samples)))]
        return [samples[start : start + self.window] for start in starts]

    def encode(self, samples: np.ndarray) -> np.ndarray:
        windows = self.windows(samples)
        # Features batch by batch: a long clip's (windows, 4, 1001, 64) Mels would not be small.
        out = [
            self._forward(windows[start : start + self.batch_size])
            for start in range(0, len(windows), self.batch_size)
        ]
        return np.concatenate(out)

    @torch.inference_mode()
    def _forward(self, windows: list[np.ndarray]) -> np.ndarray:
        """Embeddings of a batch of windows, each through the feature extractor on its own."""
        inputs = [
            self.extractor(window, sampling_rate=self.sample_rate, return_tensors="np")
            for window in windows
        ]
        features = np.concatenate([i["input_features"] for i in inputs])  # (B, C, T, mels)
        is_longer = np.concatenate([i["is_longer"] for i in inputs])  # (B, 1)
        audio = self.model.audio_model(
            input_features=torch.from_numpy(features).float().to(self.device),
            is_longer=torch.from_numpy(is_longer).to(self.device),
        )
        pooled = audio.pooler_output  # (B, hidden_size)
        if self.embedding == "pooled":
            return pooled.float().cpu().numpy()
        projected = self.model.audio_projection(pooled)  # (B, projection_dim)
        return torch.nn.functional.normalize(projected, dim=-1).float().cpu().numpy()
