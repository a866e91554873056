"""mmseg's ResNetV1c with output stride 8 (``resnet18_v1c``, ``resnet101_v1c``), keys as mmseg 0.26.

Deep stem 3x3 s2 3->32, 32->32, 32->64 (BN-ReLU each; keys ``stem.{0,1,3,4,6,7}``), max-pool 3/s2,
then layers with strides (1, 2, 1, 1) and dilations (1, 1, 2, 4); contract_dilation: the first
block of a dilated layer uses half the dilation. BasicBlock puts stride and dilation on ``conv1``
only (``conv2`` is a plain 3x3); the "pytorch"-style Bottleneck puts them on its 3x3 ``conv2``.
Downsample = 1x1 conv with the block's stride + BN. ``forward`` returns (c1, c2, c3, c4).
"""
from __future__ import annotations

from typing import List, Tuple

from torch import Tensor, nn

from .common import NormLayer

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int, downsample, norm_layer: NormLayer):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int, downsample, norm_layer: NormLayer):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm_layer(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetV1c(nn.Module):
    def __init__(self, depth: int, norm_layer: NormLayer = nn.BatchNorm2d, strides=(1, 2, 1, 1),
                 dilations=(1, 1, 2, 4), contract_dilation: bool = True) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError("ResNetV1c depth must be one of %s, got %r" % (sorted(DEPTHS), depth))
        kind, blocks = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False), norm_layer(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, 1, 1, bias=False), norm_layer(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 1, 1, bias=False), norm_layer(64), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        channels: List[int] = []
        for index, (count, stride, dilation) in enumerate(zip(blocks, strides, dilations)):
            planes = 64 * 2 ** index
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                                           norm_layer(planes * block.expansion))
            first_dilation = dilation // 2 if (contract_dilation and dilation > 1) else dilation
            layers = [block(inplanes, planes, stride, first_dilation, downsample, norm_layer)]
            inplanes = planes * block.expansion
            layers += [block(inplanes, planes, 1, dilation, None, norm_layer) for _ in range(count - 1)]
            self.add_module("layer%d" % (index + 1), nn.Sequential(*layers))
            channels.append(inplanes)
        self.stage_channels: Tuple[int, ...] = tuple(channels)

    def forward(self, x: Tensor):
        x = self.maxpool(self.stem(x))
        outs = []
        for index in range(4):
            x = getattr(self, "layer%d" % (index + 1))(x)
            outs.append(x)
        return tuple(outs)
