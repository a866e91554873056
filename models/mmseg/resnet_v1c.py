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

from ..backbones.resnet import BasicBlockV1b, BottleneckV1b
from .common import NormLayer

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}


# mmseg's BasicBlock and "pytorch"-style Bottleneck are CIRKD's v1b blocks with a plain 3x3 conv2
# (previous_dilation 1): the same keys and the same function, so they are reused.
BasicBlock, Bottleneck = BasicBlockV1b, BottleneckV1b


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
            layers = [block(inplanes, planes, stride=stride, dilation=first_dilation, downsample=downsample,
                            norm_layer=norm_layer)]
            inplanes = planes * block.expansion
            layers += [block(inplanes, planes, dilation=dilation, norm_layer=norm_layer) for _ in range(count - 1)]
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
