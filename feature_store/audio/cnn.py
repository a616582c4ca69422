"""The audio CNN and its input: AlexNet on fixed-length spectrogram segments.

A clip's spectrogram image ``[C, H, T]`` is standardised per clip (mean and deviation of every
channel's row, as in cepstral mean-variance normalisation) and cut into segments of
``segment_frames`` frames every ``segment_hop`` frames; the last segment (and a clip shorter than
one segment) is zero-padded, zero being the clip's mean after standardising. AlexNet is
torchvision's layout in plain PyTorch, so an ImageNet AlexNet state dict loads as it is
(``feature_store.audio.checkpoint``). The last pooling layer's map ``[C=256, H, W]`` of a segment
becomes ``H·W`` vectors of 256 dims.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from avcore.datasets import default_classes

FEATURE_DIM = 256  # channels of AlexNet's last pooling map


def standardize(image: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Per-clip mean-variance normalisation of every channel's row (``[C, H, T]``, float32).

    A (nearly) constant row, as in silence, becomes zeros rather than amplified rounding noise.
    """
    image = image.astype(np.float64)
    mean = image.mean(axis=2, keepdims=True)
    std = image.std(axis=2, keepdims=True)
    scale = np.where(std > eps, 1.0 / np.maximum(std, eps), 0.0)
    return ((image - mean) * scale).astype(np.float32)


def segment(image: np.ndarray, frames: int, hop: int) -> np.ndarray:
    """Cut ``[C, H, T]`` into ``[S, C, H, frames]`` segments starting every ``hop`` frames.

    ``S = 1 + ceil(max(T - frames, 0) / hop)``; the last segment is zero-padded, so every frame is
    in some segment and a clip shorter than one segment gives exactly one.
    """
    channels, height, total = image.shape
    count = 1 + -(-max(total - frames, 0) // hop)
    padded_length = (count - 1) * hop + frames
    padded = np.zeros((channels, height, padded_length), dtype=np.float32)
    padded[:, :, :total] = image
    # (C, H, S, frames) view, then segments first.
    windows = np.lib.stride_tricks.sliding_window_view(padded, frames, axis=2)[:, :, ::hop]
    return windows.transpose(2, 0, 1, 3).copy()  # a writable array of its own


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al. 2012, torchvision's single-tower layout) for spectrograms.

    ``in_channels`` is 1 for the speech spectrogram, 3 for log-Mel + deltas; ``fc_dim`` is the
    width of the two hidden fully connected layers (4096 in the original).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = len(default_classes()),
        *,
        fc_dim: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, FEATURE_DIM, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # the last pooling layer: the stored map
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(FEATURE_DIM * 6 * 6, fc_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(fc_dim, fc_dim),
            nn.ReLU(inplace=True),
            nn.Linear(fc_dim, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(x)  # (S, 256, h, w)
        return self.classifier(torch.flatten(self.avgpool(maps), 1))  # (S, classes)


def map_vectors(maps: torch.Tensor) -> torch.Tensor:
    """Last-pooling maps ``[S, C, H, W]`` -> ``[S·H·W, C]``: segment by segment, each segment's
    positions in row-major (H, then W) order, one C-dim vector per position."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


@torch.inference_mode()
def segment_vectors(model: AlexNet, segments: np.ndarray, *, batch_size: int) -> np.ndarray:
    """``[S, C, H, frames]`` segments -> ``[S·h·w, 256]`` float32 vectors, in time order."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        map_vectors(model.features(torch.from_numpy(segments[i : i + batch_size]).to(device)))
        for i in range(0, len(segments), batch_size)
    ]
    return torch.cat(out).float().cpu().numpy()
