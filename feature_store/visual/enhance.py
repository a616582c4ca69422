"""Feature enhancements (paper, "Feature Enhancement", Table 3), in a registry.

- ``basic``: one backbone vector per frame.
- ``f-mean``: the mean over 18 transformed copies of the frame: rotation ∈ {−2°, 0°, 2°} ×
  scale ∈ {1, 1.03, 1.07} × {original, horizontally flipped}.
- ``f-meanstd``: [mean : std] over the same 18 copies (population std), 2·dim.
- ``f-meanstd-2``: as f-meanstd with rotation ∈ {−15°, 0°, 15°} × scale ∈ {0.75, 1, 1.25}.
- ``f-normfft``: the FFT of the basic vector divided by its L2 norm, [real : imaginary], 2·dim.
- ``f-ar-mean``: [f-mean of backbone A : f-mean of backbone B] (paper: AffectNet- and
  RAF-DB-pretrained models), dim_A + dim_B.

A copy with rotation θ and scale s shows the crop turned by θ (counter-clockwise on screen) and
magnified s times about its centre, then mirrored when flipped; the border outside the crop is
black. ``transformed_copies`` makes them all with one ``grid_sample`` call.

Each enhancement says which per-copy features it is made from (``inputs``: a backbone and a
``CopySet``, or the crop itself) and how (``combine``), so a build of many stores computes each
once: F-Mean and F-MeanStd share the same 18 copies, F-NormFFT the basic vectors, F-AR-Mean the
two backbones' F-Mean copies (``feature_store.visual.matrix``).

    >>> enhancement = make_enhancement("f-meanstd")
    >>> enhancement(crops, [backbone], batch_size=64)    # [F, 3, S, S] -> [F, 2 * backbone.dim]
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from avcore.registry import Registry
from feature_store.errors import StoreError
from feature_store.visual.backbone_base import Backbone

ROTATIONS = (-2.0, 0.0, 2.0)
SCALES = (1.0, 1.03, 1.07)
ROTATIONS_2 = (-15.0, 0.0, 15.0)
SCALES_2 = (0.75, 1.0, 1.25)


def copy_parameters(
    rotations: Sequence[float], scales: Sequence[float]
) -> list[tuple[float, float, bool]]:
    """(rotation in degrees, scale, flipped) of every copy, in the order they are made."""
    return [(r, s, f) for r, s, f in itertools.product(rotations, scales, (False, True))]


def transformed_copies(
    crops: torch.Tensor, rotations: Sequence[float], scales: Sequence[float]
) -> torch.Tensor:
    """``[F, 3, S, S]`` -> ``[F * C, 3, S, S]``: the C copies of each frame, frame-major."""
    frames = crops.shape[0]
    params = copy_parameters(rotations, scales)
    theta = torch.zeros(len(params), 2, 3, dtype=crops.dtype, device=crops.device)
    for index, (degrees, scale, flipped) in enumerate(params):
        # affine_grid maps output coordinates to input ones (the inverse transform). In x-right,
        # y-down normalised coordinates a turn by θ counter-clockwise on screen samples
        # input = [[cos, −sin], [sin, cos]] · output / s; the flip (applied last) negates output x.
        angle = math.radians(degrees)
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        mirror = -1.0 if flipped else 1.0
        theta[index] = torch.tensor([[cos * mirror, -sin, 0.0], [sin * mirror, cos, 0.0]])
    theta = theta.repeat(frames, 1, 1)  # (F * C, 2, 3)
    source = crops.repeat_interleave(len(params), dim=0)  # (F * C, 3, S, S)
    grid = F.affine_grid(theta, list(source.shape), align_corners=False)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def embed(backbone: Backbone, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The backbone over ``images`` in batches of at most ``batch_size``."""
    return torch.cat([backbone(chunk) for chunk in images.split(batch_size)])


@dataclass(frozen=True)
class CopySet:
    """The transformed copies a feature is taken over: rotations × scales × {original, flipped}."""

    rotations: tuple[float, ...]
    scales: tuple[float, ...]

    @property
    def size(self) -> int:
        return len(copy_parameters(self.rotations, self.scales))


F_MEAN_COPIES = CopySet(ROTATIONS, SCALES)
F_MEANSTD_2_COPIES = CopySet(ROTATIONS_2, SCALES_2)

#: What an enhancement is made from: (backbone index, copies; None = the crop itself).
Input = tuple[int, CopySet | None]


def copy_features(
    crops: torch.Tensor, backbone: Backbone, copies: CopySet | None, batch_size: int
) -> torch.Tensor:
    """The backbone's vectors of ``crops``: ``[F, dim]`` for the crops themselves, ``[F, C, dim]``
    for their C copies (made a few frames at a time to bound memory)."""
    if copies is None:
        return embed(backbone, crops, batch_size)
    frames_per_step = max(1, batch_size // copies.size)
    out = []
    for chunk in crops.split(frames_per_step):
        images = transformed_copies(chunk, copies.rotations, copies.scales)
        out.append(embed(backbone, images, batch_size).view(len(chunk), copies.size, -1))
    return torch.cat(out)


class Enhancement(ABC):
    """Turns a clip's face crops into one feature vector per frame, in two steps so that a build
    of many stores can share the backbone passes: ``inputs`` names the per-copy features it needs,
    ``combine`` makes the vectors from them."""

    name: str
    backbones: int = 1  # how many backbones it combines

    @abstractmethod
    def out_dim(self, dims: Sequence[int]) -> int: ...

    @abstractmethod
    def inputs(self) -> list[Input]:
        """The features it is made from, in the order ``combine`` takes them."""

    @abstractmethod
    def combine(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[F, dim]`` / ``[F, C, dim]`` features (as ``inputs`` lists them) -> ``[F, out_dim]``."""

    def __call__(
        self, crops: torch.Tensor, backbones: Sequence[Backbone], batch_size: int
    ) -> torch.Tensor:
        """``crops [F, 3, S, S]`` float RGB in 0..1 -> ``[F, out_dim]``."""
        return self.combine(
            [
                copy_features(crops, backbones[index], copies, batch_size)
                for index, copies in self.inputs()
            ]
        )


class Basic(Enhancement):
    name = "basic"

    def out_dim(self, dims: Sequence[int]) -> int:
        return dims[0]

    def inputs(self) -> list[Input]:
        return [(0, None)]

    def combine(self, features):
        return features[0]


class CopyStatistics(Enhancement):
    """Mean (and optionally std) of the backbone's vectors over transformed copies of each frame."""

    def __init__(self, name: str, copies: CopySet, *, with_std: bool):
        self.name, self.copies, self.with_std = name, copies, with_std

    def out_dim(self, dims: Sequence[int]) -> int:
        return dims[0] * (2 if self.with_std else 1)

    def inputs(self) -> list[Input]:
        return [(0, self.copies)]

    def combine(self, features):
        mean = features[0].mean(dim=1)  # (F, C, D) -> (F, D)
        if not self.with_std:
            return mean
        return torch.cat([mean, features[0].std(dim=1, unbiased=False)], dim=1)  # (F, 2D)


class NormFFT(Enhancement):
    name = "f-normfft"

    def out_dim(self, dims: Sequence[int]) -> int:
        return 2 * dims[0]

    def inputs(self) -> list[Input]:
        return [(0, None)]

    def combine(self, features):
        spectrum = torch.fft.fft(features[0].double(), dim=1)  # (F, D) complex
        norm = spectrum.abs().pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        spectrum = spectrum / norm
        return torch.cat([spectrum.real, spectrum.imag], dim=1).float()  # (F, 2D)


class ARMean(Enhancement):
    """F-AR-Mean: the F-Mean vectors of two differently pretrained backbones, concatenated."""

    name = "f-ar-mean"
    backbones = 2

    def out_dim(self, dims: Sequence[int]) -> int:
        return dims[0] + dims[1]

    def inputs(self) -> list[Input]:
        return [(0, F_MEAN_COPIES), (1, F_MEAN_COPIES)]

    def combine(self, features):
        return torch.cat([copies.mean(dim=1) for copies in features], dim=1)


ENHANCEMENTS: Registry[Callable[[], Enhancement]] = Registry("enhancement", error=StoreError)
register_enhancement = ENHANCEMENTS.register


register_enhancement("basic")(Basic)
register_enhancement("f-mean")(lambda: CopyStatistics("f-mean", F_MEAN_COPIES, with_std=False))
register_enhancement("f-meanstd")(lambda: CopyStatistics("f-meanstd", F_MEAN_COPIES, with_std=True))
register_enhancement("f-meanstd-2")(
    lambda: CopyStatistics("f-meanstd-2", F_MEANSTD_2_COPIES, with_std=True)
)
register_enhancement("f-normfft")(NormFFT)
register_enhancement("f-ar-mean")(ARMean)


def make_enhancement(name: str) -> Enhancement:
    return ENHANCEMENTS[name]()
