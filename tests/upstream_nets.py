"""The face CNNs as their upstream projects publish them, transcribed for the checkpoint tests.

These are written from the upstream sources, not from ``feature_store.visual.nets``, so that a
layout test compares our loader against what the checkpoint's users run: attribute names (hence
state-dict keys), layer order and forward passes follow each file line by line; only Python 2
idioms and unused options (dilation, fp16, the training branches) are left out.

- ``evolve_backbone``: face.evoLVe.PyTorch ``backbone/model_irse.py`` (``Backbone``,
  ``bottleneck_IR``, ``bottleneck_IR_SE``, ``SEModule``, ``get_blocks``), ``IR_50``/``IR_SE_50``.
- ``iresnet``: insightface ``recognition/arcface_torch/backbones/iresnet.py``.
- ``TorchvisionResNet``: torchvision ``models/resnet.py`` ``resnet18`` (BasicBlock).
- ``ResNetAT``: Emotion-FAN ``Code/Model.py`` ``ResNet_AT`` / ``resnet18_AT`` (eval, first level).
- ``VggFaceDag``: ``vgg_face_dag.py`` of Albanie's pytorch-mcn (Oxford VGG-Face, ``meta``).
- ``TorchvisionVGG16``: torchvision ``models/vgg.py`` ``vgg16`` (cfg "D", no BatchNorm).
"""

from __future__ import annotations

from collections import namedtuple

import torch
from torch import nn
from torch.nn import (
    AdaptiveAvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Linear,
    MaxPool2d,
    Module,
    PReLU,
    ReLU,
    Sequential,
    Sigmoid,
)

# -- face.evoLVe.PyTorch backbone/model_irse.py ----------------------------------------------------


class Flatten(Module):
    def forward(self, input):
        return input.view(input.size(0), -1)


class SEModule(Module):
    def __init__(self, channels, reduction):
        super().__init__()
        self.avg_pool = AdaptiveAvgPool2d(1)
        self.fc1 = Conv2d(channels, channels // reduction, kernel_size=1, padding=0, bias=False)
        nn.init.xavier_uniform_(self.fc1.weight.data)
        self.relu = ReLU(inplace=True)
        self.fc2 = Conv2d(channels // reduction, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = Sigmoid()

    def forward(self, x):
        module_input = x
        x = self.avg_pool(x)
        x = self.fc1(x)
        x = self.relu(x)
        x = self.fc2(x)
        x = self.sigmoid(x)
        return module_input * x


class bottleneck_IR(Module):  # noqa: N801 - upstream's name
    def __init__(self, in_channel, depth, stride):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = MaxPool2d(1, stride)
        else:
            self.shortcut_layer = Sequential(
                Conv2d(in_channel, depth, (1, 1), stride, bias=False), BatchNorm2d(depth)
            )
        self.res_layer = Sequential(
            BatchNorm2d(in_channel),
            Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            PReLU(depth),
            Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            BatchNorm2d(depth),
        )

    def forward(self, x):
        shortcut = self.shortcut_layer(x)
        res = self.res_layer(x)
        return res + shortcut


class bottleneck_IR_SE(Module):  # noqa: N801 - upstream's name
    def __init__(self, in_channel, depth, stride):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = MaxPool2d(1, stride)
        else:
            self.shortcut_layer = Sequential(
                Conv2d(in_channel, depth, (1, 1), stride, bias=False), BatchNorm2d(depth)
            )
        self.res_layer = Sequential(
            BatchNorm2d(in_channel),
            Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            PReLU(depth),
            Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            BatchNorm2d(depth),
            SEModule(depth, 16),
        )

    def forward(self, x):
        shortcut = self.shortcut_layer(x)
        res = self.res_layer(x)
        return res + shortcut


class Bottleneck(namedtuple("Block", ["in_channel", "depth", "stride"])):
    """A named tuple describing a ResNet block."""


def get_block(in_channel, depth, num_units, stride=2):
    return [Bottleneck(in_channel, depth, stride)] + [
        Bottleneck(depth, depth, 1) for _ in range(num_units - 1)
    ]


def get_blocks(num_layers):
    assert num_layers == 50
    return [
        get_block(in_channel=64, depth=64, num_units=3),
        get_block(in_channel=64, depth=128, num_units=4),
        get_block(in_channel=128, depth=256, num_units=14),
        get_block(in_channel=256, depth=512, num_units=3),
    ]


class EvolveBackbone(Module):
    def __init__(self, input_size, num_layers, mode="ir"):
        super().__init__()
        assert input_size[0] in [112, 224]
        blocks = get_blocks(num_layers)
        unit_module = bottleneck_IR if mode == "ir" else bottleneck_IR_SE
        self.input_layer = Sequential(
            Conv2d(3, 64, (3, 3), 1, 1, bias=False), BatchNorm2d(64), PReLU(64)
        )
        if input_size[0] == 112:
            self.output_layer = Sequential(
                BatchNorm2d(512), Dropout(), Flatten(), Linear(512 * 7 * 7, 512), BatchNorm1d(512)
            )
        else:
            self.output_layer = Sequential(
                BatchNorm2d(512),
                Dropout(),
                Flatten(),
                Linear(512 * 14 * 14, 512),
                BatchNorm1d(512),
            )
        modules = []
        for block in blocks:
            for bottleneck in block:
                modules.append(
                    unit_module(bottleneck.in_channel, bottleneck.depth, bottleneck.stride)
                )
        self.body = Sequential(*modules)

    def forward(self, x):
        x = self.input_layer(x)
        x = self.body(x)
        x = self.output_layer(x)
        return x


def IR_50(input_size):  # noqa: N802 - upstream's name
    return EvolveBackbone(input_size, 50, "ir")


def IR_SE_50(input_size):  # noqa: N802 - upstream's name
    return EvolveBackbone(input_size, 50, "ir_se")


# -- insightface recognition/arcface_torch/backbones/iresnet.py ------------------------------------


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class IBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return out


class IResNet(nn.Module):
    fc_scale = 7 * 7

    def __init__(self, block, layers, dropout=0, num_features=512):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes, eps=1e-05)
        self.prelu = nn.PReLU(self.inplanes)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=2)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.bn2 = nn.BatchNorm2d(512 * block.expansion, eps=1e-05)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.fc = nn.Linear(512 * block.expansion * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-05)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion, eps=1e-05),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.prelu(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.bn2(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)
        x = self.features(x)
        return x


def iresnet50():
    return IResNet(IBasicBlock, [3, 4, 14, 3])


def iresnet100():
    return IResNet(IBasicBlock, [3, 13, 30, 3])


# -- torchvision models/resnet.py (resnet18) and Emotion-FAN Code/Model.py (resnet18_AT) ----------


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class _ResNetTrunk(nn.Module):
    """The stem and stages both torchvision's ``ResNet`` and Emotion-FAN's ``ResNet_AT`` build."""

    def _trunk(self, block, layers):
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def pooled(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.avgpool(x)


class TorchvisionResNet(_ResNetTrunk):
    def __init__(self, num_classes=1000):
        super().__init__()
        self._trunk(BasicBlock, [2, 2, 2, 2])
        self.fc = nn.Linear(512 * BasicBlock.expansion, num_classes)

    def features(self, x):
        """``forward`` without its last line (``self.fc``): the 512-d pooled features."""
        return torch.flatten(self.pooled(x), 1)


class ResNetAT(_ResNetTrunk):
    """Emotion-FAN's ``ResNet_AT(BasicBlock, [2, 2, 2, 2])`` with its attention heads."""

    def __init__(self):
        super().__init__()
        self._trunk(BasicBlock, [2, 2, 2, 2])
        self.dropout = nn.Dropout(0.5)
        self.dropout2 = nn.Dropout(0.6)
        self.alpha = nn.Sequential(nn.Linear(512, 1), nn.Sigmoid())
        self.beta = nn.Sequential(nn.Linear(1024, 1), nn.Sigmoid())
        self.pred_fc1 = nn.Linear(512, 7)
        self.pred_fc2 = nn.Linear(1024, 7)

    def forward(self, x, phrase="eval", AT_level="first_level"):  # noqa: N803 - upstream's name
        assert phrase == "eval" and AT_level == "first_level"
        f = self.pooled(x)
        f = f.squeeze(3).squeeze(2)  # f[1, 512, 1, 1] ---> f[1, 512]
        alphas = self.alpha(self.dropout(f))
        return f, alphas


def load_parameter(structure, state_dict):
    """Emotion-FAN's ``LoadParameter``: drop ``module.fc``, strip ``module.``, load the rest."""
    model_state_dict = structure.state_dict()
    for key in state_dict:
        if key not in ("module.fc.weight", "module.fc.bias"):
            model_state_dict[key.replace("module.", "")] = state_dict[key]
    structure.load_state_dict(model_state_dict)
    return structure


# -- pytorch-mcn vgg_face_dag.py and torchvision models/vgg.py ------------------------------------


class VggFaceDag(nn.Module):
    def __init__(self):
        super().__init__()
        self.meta = {
            "mean": [129.186279296875, 104.76238250732422, 93.59396362304688],
            "std": [1, 1, 1],
            "imageSize": [224, 224, 3],
        }
        widths = {1: (3, 64), 2: (64, 128), 3: (128, 256), 4: (256, 512), 5: (512, 512)}
        for block, (first, width) in widths.items():
            for position in range(1, 3 if block < 3 else 4):
                channels = first if position == 1 else width
                conv = nn.Conv2d(channels, width, kernel_size=[3, 3], stride=(1, 1), padding=(1, 1))
                setattr(self, f"conv{block}_{position}", conv)
                setattr(self, f"relu{block}_{position}", nn.ReLU(inplace=True))
            pool = nn.MaxPool2d(kernel_size=[2, 2], stride=[2, 2], padding=0, dilation=1)
            setattr(self, f"pool{block}", pool)
        self.fc6 = nn.Linear(in_features=25088, out_features=4096, bias=True)
        self.relu6 = nn.ReLU(inplace=True)
        self.dropout6 = nn.Dropout(p=0.5)
        self.fc7 = nn.Linear(in_features=4096, out_features=4096, bias=True)
        self.relu7 = nn.ReLU(inplace=True)
        self.dropout7 = nn.Dropout(p=0.5)
        self.fc8 = nn.Linear(in_features=4096, out_features=2622, bias=True)

    def fc7_features(self, x0):
        """``forward`` up to ``x36 = self.relu7(x35)``: the 4096-d face descriptor."""
        x = x0
        for block in range(1, 6):
            for position in range(1, 3 if block < 3 else 4):
                x = getattr(self, f"relu{block}_{position}")(
                    getattr(self, f"conv{block}_{position}")(x)
                )
            x = getattr(self, f"pool{block}")(x)
        x = x.view(x.size(0), -1)
        return self.relu7(self.fc7(self.dropout6(self.relu6(self.fc6(x)))))


class TorchvisionVGG16(nn.Module):
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self, num_classes=1000):
        super().__init__()
        layers, in_channels = [], 3
        for v in self.cfg:
            if v == "M":
                layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
            else:
                layers += [
                    nn.Conv2d(in_channels, v, kernel_size=3, padding=1),
                    nn.ReLU(inplace=True),
                ]
                in_channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, num_classes),
        )

    def fc7_features(self, x):
        """``forward`` with ``classifier[:5]``: fc7 after its ReLU."""
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier[:5](x)
