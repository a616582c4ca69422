"""Scoring a model on a split: logits in eval mode, the per-epoch validation figures, and the
attention weights of a few validation clips for the trial's plot."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avcore.metrics import uar
from trainables.config import TrialConfig
from trainables.model import EmotionModel
from trainables.tensors import SplitTensors, model_inputs

ATTENTION_CLIPS = 4  # validation clips whose attention weights a result keeps for plotting


@torch.no_grad()
def predict_logits(
    model: EmotionModel, split: SplitTensors, config: TrialConfig, batch: int
) -> Tensor:
    """Logits ``[N, classes]`` of a whole split over all frames, in eval mode."""
    model.eval()
    device = split.labels.device
    chunks = [
        model(
            **model_inputs(
                split, torch.arange(start, min(start + batch, len(split)), device=device), config
            )
        )
        for start in range(0, len(split), batch)
    ]
    if not chunks:
        return torch.zeros(0, model.classifier.out_features, device=device)
    return torch.cat(chunks)


def val_figures(logits: Tensor, val: SplitTensors, labels: np.ndarray) -> dict[str, float]:
    """``val_loss``, ``val_acc`` and ``val_uar`` of validation logits; ``labels`` are
    ``val.labels`` on the host (copied once per trial, not per epoch)."""
    # Plain cross-entropy (no smoothing, no loss weights), so val_loss compares across trials.
    val_loss = float(F.cross_entropy(logits, val.labels))
    predicted = logits.argmax(dim=1).cpu().numpy()
    return {
        "val_loss": val_loss,
        "val_acc": float((predicted == labels).mean()),
        "val_uar": uar(predicted, labels, logits.shape[1]),
    }


@torch.no_grad()
def attention_sample(model: EmotionModel, val: SplitTensors, config: TrialConfig) -> dict[str, Any]:
    """Per-frame attention weights of the first few validation clips (trimmed to their lengths),
    with the clips' true and predicted classes and each modality's attention kind."""
    model.eval()
    count = min(ATTENTION_CLIPS, len(val))
    index = torch.arange(count, device=val.labels.device)
    predicted = model(**model_inputs(val, index, config)).argmax(dim=1)
    sample: dict[str, Any] = {
        "clip_ids": val.clip_ids[:count],
        "labels": val.labels[:count].tolist(),
        "predicted": predicted.tolist(),
        "kinds": {"visual": config.visual_attention, "audio": config.audio_attention},
        "visual": [],
        "audio": [],
    }
    for modality, pool in (("visual", model.visual_pool), ("audio", model.audio_pool)):
        if pool is None or pool.weights is None:
            continue
        lengths = val.lengths[modality][:count].tolist()
        weights = pool.weights.cpu().numpy()
        sample[modality] = [weights[i, : lengths[i]].copy() for i in range(count)]
    return sample
