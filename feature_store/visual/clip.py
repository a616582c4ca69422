"""CLIP image towers through ``open_clip``, as backbones of the visual recipe.

Each kind is one open_clip model config; the weights are the release's own state dict, read by
the safe loader (``open_clip_pytorch_model.bin`` or ``open_clip_model.safetensors`` as open_clip
and the Hugging Face Hub distribute them; OpenAI's TorchScript ``.pt`` is refused with the
one-line conversion). Only the image tower is built and loaded (the ``visual.`` keys; the text
tower's are not used). Nothing is downloaded: ``open_clip`` is imported when a backbone is built.

    clip-vit-b-32, clip-vit-b-16,     OpenAI CLIP (QuickGELU, as OpenAI trained it): OpenAI's
    clip-vit-l-14, clip-vit-l-14-336  weights and open_clip's *-quickgelu releases (MetaCLIP, ...)
    openclip-vit-b-32, -b-16, -l-14   OpenCLIP's GELU towers (LAION-2B, DataComp, ...)

The activation is not in the weights: OpenAI weights in a GELU tower give plausible, wrong
features, so the kind names it. Features: the image embedding (``encode_image``, not
L2-normalised; 512-d for B, 768-d for L) or, with ``layer: N``, transformer block N's class token
(``token: cls``) or mean patch token (``token: mean``), the residual stream before ``ln_post``
(the tower's width: 768 for B, 1024 for L). Preprocessing: the ``clip`` preset (OpenAI
mean/std, bicubic) at the model's input side (224, 336 for ViT-L/14-336), which it takes only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from feature_store.visual.backbone_base import Backbone, preprocessing_for
from feature_store.visual.specs import BackboneSpec
from feature_store.visual.weights import read_backbone_checkpoint, torch_backbone
from feature_store.weights import Checkpoint, WeightsError

#: kind -> open_clip model config (its image_size is the input side)
CLIP_MODELS = {
    "clip-vit-b-32": "ViT-B-32-quickgelu",
    "clip-vit-b-16": "ViT-B-16-quickgelu",
    "clip-vit-l-14": "ViT-L-14-quickgelu",
    "clip-vit-l-14-336": "ViT-L-14-336-quickgelu",
    "openclip-vit-b-32": "ViT-B-32",
    "openclip-vit-b-16": "ViT-B-16",
    "openclip-vit-l-14": "ViT-L-14",
}


class ClipImageFeatures(nn.Module):
    """An open_clip ``VisionTransformer``: its image embedding, or one block's token."""

    def __init__(self, visual: nn.Module, layer: int | None, token: str) -> None:
        super().__init__()
        self.visual, self.layer, self.token = visual, layer, token

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S)
        if self.layer is None:
            return self.visual(images)  # CLIP.encode_image: (B, embed_dim)
        out = self.visual.forward_intermediates(
            images,
            indices=[self.layer - 1],
            stop_early=True,
            intermediates_only=True,
            output_fmt="NLC",
            output_extra_tokens=True,
        )
        if self.token == "cls":
            return out["image_intermediates_prefix"][0][:, 0]  # (B, width)
        return out["image_intermediates"][0].mean(dim=1)  # (B, grid², width) -> (B, width)


@contextmanager
def _quiet() -> Iterator[None]:
    """open_clip logs a warning for every model built without its own weights: ours come later."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def image_tower(config: str) -> nn.Module:
    """open_clip's image tower of ``config``, randomly initialised."""
    try:
        import open_clip
    except ImportError as exc:
        raise WeightsError(
            f"the CLIP backbones need open_clip (pip install open_clip_torch): {exc}"
        ) from None
    with _quiet():
        model = open_clip.create_model(config, pretrained=None)
    return model.visual


def image_state(checkpoint: Checkpoint) -> Checkpoint:
    """The image tower's part of a CLIP state dict: its ``visual.`` keys (the text tower's are not
    used); a file without them is taken whole (the image tower alone, or another layout)."""
    visual = {k: v for k, v in checkpoint.state.items() if k.startswith("visual.")}
    return Checkpoint(checkpoint.path, visual, checkpoint.extra) if visual else checkpoint


def _in_tower(key: str) -> str:
    return key if key.startswith("visual.") else f"visual.{key}"


def clip_backbone(spec: BackboneSpec, device: torch.device, *, config: str) -> Backbone:
    checkpoint = read_backbone_checkpoint(spec)
    visual = image_tower(config)
    blocks = len(visual.transformer.resblocks)
    if spec.layer is not None and spec.layer > blocks:
        raise WeightsError(
            f"backbone {spec.name!r} ({config}) has {blocks} transformer blocks; layer is "
            f"{spec.layer}"
        )
    token = spec.token or "cls"
    size = visual.image_size[0]
    preprocessing = preprocessing_for(spec, device, default="clip", size=size, fixed=True)
    network: dict[str, Any] = {
        "package": f"open_clip {_version('open_clip_torch')}",
        "model": config,
        "features": "encode_image" if spec.layer is None else f"block {spec.layer} {token}",
    }
    return torch_backbone(
        spec, device, ClipImageFeatures(visual, spec.layer, token),
        None if checkpoint is None else image_state(checkpoint),
        dim=visual.output_dim if spec.layer is None else visual.transformer.width,
        preprocessing=preprocessing, rename=_in_tower, network=network,
    )  # fmt: skip


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)
