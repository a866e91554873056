"""mmseg's MobileNetV2 as in ``deeplabv3plus_m-v2-d8`` (``mobilenetv2`` in the mmseg family).

Stem 3x3 s2 -> 32 (``conv1``), stages (t, c, n) = (1,16,1) (6,24,2) (6,32,3) (6,64,4) (6,96,3)
(6,160,3) (6,320,1) with strides (1,2,2,1,1,1,1) and dilations (1,1,1,2,2,4,4); the stride AND
the dilation apply to the FIRST block of a stage only (CIRKD's dilated MobileNetV2 differs here).
ReLU6 throughout, linear projections, residual when stride 1 and in == out; no 1280 conv.
Outputs: stages 2, 3, 5, 7 (24 @1/4, 32 @1/8, 96 @1/8, 320 @1/8). Keys ``conv1.{conv,bn}``,
``layerN.i.conv.{0,1[,2]}.{conv,bn}``.
"""
from __future__ import annotations

from torch import Tensor, nn

from .common import ConvModule, NormLayer

SETTINGS = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int, dilation: int,
                 norm_layer: NormLayer) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = int(round(in_channels * expand_ratio))
        layers = []
        if expand_ratio != 1:
            layers.append(ConvModule(in_channels, hidden, 1, norm_layer=norm_layer, activation="relu6"))
        layers += [ConvModule(hidden, hidden, 3, stride, padding=dilation, dilation=dilation, groups=hidden,
                              norm_layer=norm_layer, activation="relu6"),
                   ConvModule(hidden, out_channels, 1, norm_layer=norm_layer, activation=None)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, norm_layer: NormLayer = nn.BatchNorm2d, strides=(1, 2, 2, 1, 1, 1, 1),
                 dilations=(1, 1, 1, 2, 2, 4, 4), out_indices=(1, 2, 4, 6)) -> None:
        super().__init__()
        self.out_indices = tuple(out_indices)
        self.conv1 = ConvModule(3, 32, 3, 2, padding=1, norm_layer=norm_layer, activation="relu6")
        in_channels = 32
        for index, ((expand, channels, blocks), stride, dilation) in enumerate(zip(SETTINGS, strides, dilations)):
            layers = []
            for block in range(blocks):
                layers.append(InvertedResidual(in_channels, channels, stride if block == 0 else 1, expand,
                                               dilation if block == 0 else 1, norm_layer))
                in_channels = channels
            self.add_module("layer%d" % (index + 1), nn.Sequential(*layers))
        self.stage_channels = tuple(SETTINGS[i][1] for i in self.out_indices)

    def forward(self, x: Tensor):
        x = self.conv1(x)
        outs = []
        for index in range(len(SETTINGS)):
            x = getattr(self, "layer%d" % (index + 1))(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)
