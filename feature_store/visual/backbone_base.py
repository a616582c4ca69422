"""What every visual backbone is: ``Backbone`` (face crops in 0..1 -> ``[B, dim]``), the
``Preprocessing`` a checkpoint was trained with (input side, channel order, value scale,
mean/std) and ``TorchBackbone``, a torch module fed through it. The registered backbones are in
``feature_store.visual.backbones``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from feature_store.visual.specs import BackboneSpec, PreprocessSpec
from feature_store.weights import WeightsError


class Backbone(ABC):
    """A frozen feature extractor: ``backbone(crops [B, 3, S, S] in 0..1) -> [B, dim]``."""

    name: str
    dim: int
    pretrain: str | None
    random_weights: bool = False

    @abstractmethod
    def __call__(self, crops: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]:
        """What store.json records about this backbone."""
        return {"name": self.name, "pretrain": self.pretrain, "random_weights": self.random_weights}


class Preprocessing:
    """Crops in 0..1 RGB -> the network's input: resize to ``size`` (the spec's interpolation,
    antialiased), channel order, ``x * scale``, then ``(x - mean) / std`` per channel."""

    def __init__(self, spec: PreprocessSpec, size: int, device: torch.device) -> None:
        self.spec, self.size = spec, size
        self.mode = spec.interpolation
        self.bgr = spec.channels == "bgr"
        mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
        # (x * scale - mean) / std as one fused multiply-add over the batch
        self.weight, self.bias = spec.scale / std, -mean / std

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.to(self.weight.device, torch.float32)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(
                x, size=(self.size,) * 2, mode=self.mode, antialias=True, align_corners=False
            )
            if self.mode == "bicubic":  # bicubic overshoots; PIL's uint8 result is clipped
                x = x.clamp_(0, 1)
        if self.bgr:
            x = x.flip(1)
        return torch.addcmul(self.bias, x, self.weight)

    def describe(self) -> dict[str, Any]:
        return {**self.spec.model_dump(mode="json"), "size": self.size}


class TorchBackbone(Backbone):
    """A torch module fed through its checkpoint's ``Preprocessing``. ``network`` says what runs
    (for a released encoder: its package, model and the layer the features come from) and
    ``checkpoint`` which weights (path and sha256); both go into store.json."""

    def __init__(
        self,
        name: str,
        module: nn.Module,
        *,
        dim: int,
        preprocessing: Preprocessing,
        pretrain: str | None,
        random_weights: bool,
        ignored_keys: list[str],
        checkpoint: dict[str, str] | None = None,
        network: dict[str, Any] | None = None,
    ) -> None:
        self.name, self.dim, self.pretrain = name, dim, pretrain
        self.random_weights, self.ignored_keys = random_weights, ignored_keys
        self.checkpoint, self.network = checkpoint, network or {}
        self.preprocess = preprocessing
        self.input_size = preprocessing.size
        self.device = preprocessing.weight.device
        self.module = module.eval().to(self.device)

    @torch.inference_mode()
    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        return self.module(self.preprocess(crops)).float()

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            **({"network": self.network} if self.network else {}),
            "checkpoint": self.checkpoint,
            "preprocess": self.preprocess.describe(),
            "ignored_keys": self.ignored_keys,
        }


def preprocessing_for(
    spec: BackboneSpec, device: torch.device, *, default: str, size: int, fixed: bool
) -> Preprocessing:
    """The recipe's preprocessing (an untrained backbone may use its kind's ``default`` preset)
    at input side ``size``; ``fixed``: the network only takes that side."""
    preprocess = spec.preprocess or PreprocessSpec(preset=default)
    if preprocess.size is not None and preprocess.size != size:
        if fixed:
            where = f"{spec.checkpoint}: " if spec.checkpoint else ""
            raise WeightsError(
                f"{where}backbone {spec.name!r} takes {size}x{size} input (as trained); "
                f"the recipe's preprocess size is {preprocess.size}"
            )
        size = preprocess.size
    return Preprocessing(preprocess, size, device)
