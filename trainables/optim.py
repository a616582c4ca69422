"""What a trial config chooses for the optimisation: the optimiser, the per-epoch learning-rate
schedule, and the loss weights of ``balanced_loss``.

The loss weights here re-weight the training cross-entropy; they are not the per-class *score*
weights of ``ensembling`` (the paper's "class weight"), which multiply an ensemble's probabilities.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainables.config import TrialConfig


def make_optimizer(model: torch.nn.Module, config: TrialConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrialConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=max(1, config.epochs // 3), gamma=0.1
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def inverse_frequency_weights(labels: Tensor, num_classes: int) -> Tensor:
    """Loss weight of each class, ``N / (C · n_c)``; a class absent from train gets weight 0."""
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float32)
    weights = len(labels) / (num_classes * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def loss_weights(labels: Tensor, num_classes: int, config: TrialConfig) -> Tensor | None:
    """The training loss's class weights: inverse frequency with ``balanced_loss``, else none."""
    return inverse_frequency_weights(labels, num_classes) if config.balanced_loss else None
