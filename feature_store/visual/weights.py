"""A backbone's checkpoint: read it (or allow an explicitly untrained backbone), fit it into the
network (every parameter present with its shape; heads and extras ignored and listed; a misfit is
one ``WeightsError`` that also guesses which release the keys look like), and wrap the network
as a ``TorchBackbone`` that records the file and its sha256.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from feature_store.store.format import sha256_file
from feature_store.visual.backbone_base import Preprocessing, TorchBackbone
from feature_store.visual.specs import BackboneSpec
from feature_store.weights import Checkpoint, WeightsError, read_checkpoint

_SHOWN_KEYS = 6

# A parameter only one layout has, and the backbone name that loads it: for the error's hint.
_LAYOUT_HINTS = (
    ("body.0.res_layer.5.fc1.weight", "face.evoLVe IR_SE_50 (backbone ir-se50)"),
    ("input_layer.0.weight", "face.evoLVe IR_50 (backbone ir50)"),
    ("layer1.0.bn3.weight", "insightface iresnet (backbone iresnet50 or iresnet100)"),
    ("layer1.0.conv2.weight", "a torchvision-layout ResNet (backbone resnet18)"),
    ("conv1_1.weight", "vgg_face_dag (backbone vggface)"),
    ("classifier.3.weight", "a torchvision-layout VGG (backbone vggface)"),
    ("visual.transformer.resblocks.0.attn.in_proj_weight", "open_clip's CLIP (clip-*, openclip-*)"),
    (
        "vision_model.encoder.layers.0.self_attn.q_proj.weight",
        "transformers' CLIPModel, not open_clip's layout (take the release's "
        "open_clip_model.safetensors)",
    ),
    ("blocks.0.attn.qkv.weight", "a timm ViT (for CLIP take open_clip_model.safetensors)"),
    ("blocks.0.0.conv_dw.weight", "a timm EfficientNet (backbone hsemotion-b0 or hsemotion-b2)"),
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
        hint = next(
            (name for key, name in _LAYOUT_HINTS if key in state or key in checkpoint.state), None
        )
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


def read_backbone_checkpoint(spec: BackboneSpec) -> Checkpoint | None:
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


def torch_backbone(
    spec: BackboneSpec,
    device: torch.device,
    module: nn.Module,
    checkpoint: Checkpoint | None,
    *,
    dim: int,
    preprocessing: Preprocessing,
    rename: Callable[[str], str] = lambda key: key,
    network: dict[str, Any] | None = None,
) -> TorchBackbone:
    ignored = (
        []
        if checkpoint is None
        else fit_weights(module, checkpoint, backbone=spec.name, rename=rename)
    )
    return TorchBackbone(
        spec.name, module, dim=dim, preprocessing=preprocessing, pretrain=spec.pretrain,
        random_weights=checkpoint is None, ignored_keys=ignored,
        checkpoint=None if checkpoint is None else describe_file(checkpoint.path), network=network,
    )  # fmt: skip


def describe_file(path: Path) -> dict[str, str]:
    """What store.json records about a weights file: where it was and what it held."""
    return {"path": str(path), "sha256": sha256_file(path)}
