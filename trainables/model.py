"""The full model: visual attention -> audio attention -> fusion -> dropout -> classifier.

``build_model(config, visual_dim=512, audio_dim=256, num_classes=7)`` gives the audio-visual model of the paper;
leave one dim out (``None``) for the single-modality model (attention -> dropout -> classifier),
which the paper also reports (e.g. audio alone, 38 % on AFEW val).
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.attention import ATTENTIONS, Pooling
from trainables.config import TrialConfig
from trainables.errors import ConfigError
from trainables.fusion import FUSIONS, Fusion


class EmotionModel(nn.Module):
    """Pools each present modality, fuses them when both are there, and classifies."""

    def __init__(
        self,
        config: TrialConfig,
        *,
        visual_dim: int | None,
        audio_dim: int | None,
        num_classes: int,
    ) -> None:
        super().__init__()
        if visual_dim is None and audio_dim is None:
            raise ConfigError("a model needs at least one modality (visual or audio)")
        self.visual_pool: Pooling | None = None
        self.audio_pool: Pooling | None = None
        self.fusion: Fusion | None = None
        if visual_dim is not None:
            self.visual_pool = ATTENTIONS[config.visual_attention].from_config(visual_dim, config)
        if audio_dim is not None:
            self.audio_pool = ATTENTIONS[config.audio_attention].from_config(audio_dim, config)
        if self.visual_pool is not None and self.audio_pool is not None:
            self.fusion = FUSIONS[config.fusion].from_config(
                self.audio_pool.out_dim, self.visual_pool.out_dim, config
            )
            features = self.fusion.out_dim
        else:
            features = (self.visual_pool or self.audio_pool).out_dim  # type: ignore[union-attr]
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward(
        self,
        visual: Tensor | None = None,
        visual_mask: Tensor | None = None,
        audio: Tensor | None = None,
        audio_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits ``[B, classes]`` from padded frames ``[B, T, D]`` and masks ``[B, T]``."""
        pooled_v = self.visual_pool(visual, visual_mask) if self.visual_pool is not None else None
        pooled_a = self.audio_pool(audio, audio_mask) if self.audio_pool is not None else None
        if self.fusion is not None:
            joint = self.fusion(pooled_a, pooled_v)
        else:
            joint = pooled_v if pooled_v is not None else pooled_a
        return self.classifier(self.dropout(joint))


def build_model(
    config: TrialConfig,
    *,
    visual_dim: int | None = None,
    audio_dim: int | None = None,
    num_classes: int,
) -> EmotionModel:
    return EmotionModel(config, visual_dim=visual_dim, audio_dim=audio_dim, num_classes=num_classes)
