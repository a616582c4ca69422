"""The face CNNs behind the visual backbones, in plain PyTorch with their releases' parameter names.

- ``IResNet``: insightface ``arcface_torch`` ``iresnet50``/``iresnet100`` (``conv1``, ``layer1.0.bn1``
  ..., ``fc``, ``features``), 112×112 input, 512-d.
- ``EvolveIR``: face.evoLVe.PyTorch ``backbone/model_irse.py`` ``IR_50``/``IR_SE_50``
  (``input_layer``, ``body.N.res_layer``/``shortcut_layer``, ``output_layer``), 112 or 224 input,
  512-d. Its blocks are BN-conv-PReLU-conv-BN (no second BN as insightface has) with a
  parameter-free ``MaxPool2d(1, stride)`` shortcut when the channels agree; the SE variant adds a
  squeeze-excitation module as ``res_layer.5``.
- ``ResNet18``: torchvision's layout up to global average pooling (the 512-d features); Emotion-FAN's
  ``ResNet_AT`` has the same trunk.
- ``VGG16``: torchvision's layout up to fc7 and its ReLU (4096-d).

Each ``forward`` is the upstream one up to the feature layer, in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# -- insightface arcface_torch IResNet -----------------------------------------------------------


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


# -- face.evoLVe.PyTorch IR / IR-SE ---------------------------------------------------------------

# (in_channel, depth, units) of the four stages of IR-50; the first unit of each has stride 2.
EVOLVE_STAGES_50 = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))


class SEModule(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class EvolveUnit(nn.Module):
    """``bottleneck_IR`` (``se=False``) or ``bottleneck_IR_SE`` (``se=True``)."""

    def __init__(self, in_channel: int, depth: int, stride: int, se: bool):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers = [
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        self.res_layer = nn.Sequential(*layers, *([SEModule(depth, 16)] if se else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class EvolveIR(nn.Module):
    """face.evoLVe's ``Backbone(input_size, 50, mode)``: 112 input leaves 7×7, 224 leaves 14×14."""

    def __init__(self, input_size: int, se: bool = False):
        super().__init__()
        if input_size not in (112, 224):
            raise ValueError(f"face.evoLVe IR nets take 112 or 224 input, not {input_size}")
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        side = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(),
            nn.Flatten(),
            nn.Linear(512 * side * side, 512),
            nn.BatchNorm1d(512),
        )
        self.body = nn.Sequential(
            *(
                EvolveUnit(in_channel if unit == 0 else depth, depth, 2 if unit == 0 else 1, se)
                for in_channel, depth, units in EVOLVE_STAGES_50
                for unit in range(units)
            )
        )

    @staticmethod
    def input_size_of(linear_weight: torch.Tensor) -> int:
        """The input side a checkpoint was trained at, from ``output_layer.3.weight``'s shape."""
        side = round((linear_weight.shape[1] / 512) ** 0.5)
        return side * 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.body(self.input_layer(x)))  # (B, 512)


# -- torchvision ResNet-18 -------------------------------------------------------------------------


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


# -- torchvision VGG-16 ----------------------------------------------------------------------------

VGG16_CONVS: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, "M"),
    *(512, 512, 512, "M"),
    *(512, 512, 512, "M"),
)


class VGG16(nn.Module):
    """VGG-16 up to fc7 and its ReLU (4096-d)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in VGG16_CONVS:
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


def vgg_face_dag_name(key: str) -> str:
    """``conv3_2.weight`` -> ``features.12.weight``, ``fc7.bias`` -> ``classifier.3.bias``."""
    layer, _, param = key.partition(".")
    conv_index = {}
    index = 0
    block, position = 1, 1
    for width in VGG16_CONVS:
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
