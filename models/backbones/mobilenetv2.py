"""Dilated MobileNetV2 (output stride 8) in the CSAIL / Af-DCD layout.

Public API:
    MobileNetV2Dilated(norm_layer=nn.BatchNorm2d)   forward(x) -> (c1, c2, c3, c4)
        .net.features           the 18 blocks (keys ``net.features.{0..17}.*``)
        .imagenet_root          the module whose state_dict matches an ImageNet file (``net``)
        .stage_channels         (24, 32, 96, 320)

Structure (OSVAI/Af-DCD@5b086a7 models/base_models/mobilenetv2.py, from CSAILVision's
MobileNetV2Dilated): ``features.0`` conv3x3(3,32,s2)-BN-ReLU6, then inverted residuals with
(t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1).
Expand-1 blocks: dw3x3-BN-ReLU6-pw-BN (``conv.0..4``); others pw-BN-ReLU6-dw3x3-BN-ReLU6-pw-BN
(``conv.0..7``); residual when stride 1 and in == out. ``features.18`` (1x1 to 1280) and the
classifier are not built. Output stride 8: ``features.7`` (stride 2 -> 1, dw dilation 1),
``features.8-13`` dw dilation 2, ``features.14`` (stride 2 -> 1, dilation 2), ``features.15-17``
dilation 4 (padding = dilation everywhere).

Stage outputs (our choice, the official model only returns c4): c1 = ``features.3`` (24 ch,
1/4), c2 = ``features.6`` (32 ch, 1/8), c3 = ``features.13`` (96 ch, 1/8), c4 = ``features.17``
(320 ch, 1/8).
"""
from typing import Callable, List, Tuple

from torch import Tensor, nn

NormLayer = Callable[[int], nn.Module]

# (expand ratio t, out channels c, repeats n, first stride s) of ImageNet MobileNetV2
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
]
STAGE_ENDS = (3, 6, 13, 17)  # indices in `features` whose outputs are c1..c4


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, dilation: int = 1,
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        dw = nn.Conv2d(hidden, hidden, 3, stride, padding=dilation, dilation=dilation,
                       groups=hidden, bias=False)
        if expand_ratio == 1:
            self.conv = nn.Sequential(
                dw, norm_layer(hidden), nn.ReLU6(inplace=True),
                nn.Conv2d(hidden, oup, 1, bias=False), norm_layer(oup))
        else:
            self.conv = nn.Sequential(
                nn.Conv2d(inp, hidden, 1, bias=False), norm_layer(hidden), nn.ReLU6(inplace=True),
                dw, norm_layer(hidden), nn.ReLU6(inplace=True),
                nn.Conv2d(hidden, oup, 1, bias=False), norm_layer(oup))

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2Features(nn.Module):
    """The ImageNet MobileNetV2 trunk (``features.0..17``), dilated for output stride 8."""

    def __init__(self, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        input_channel = 32
        blocks: List[nn.Module] = [nn.Sequential(
            nn.Conv2d(3, input_channel, 3, 2, 1, bias=False), norm_layer(input_channel),
            nn.ReLU6(inplace=True))]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                index = len(blocks)
                stride = s if i == 0 else 1
                dilation = 1
                if index >= 7:
                    # CSAIL _nostride_dilate: strided convs become stride 1 with half the dilation
                    dilate = 2 if index < 14 else 4
                    dilation = dilate // 2 if stride == 2 else dilate
                    stride = 1
                blocks.append(InvertedResidual(input_channel, c, stride, t, dilation, norm_layer))
                input_channel = c
        self.features = nn.Sequential(*blocks)


class MobileNetV2Dilated(nn.Module):
    """Wrapper named like the official one (``pretrained.net.features.*``)."""

    def __init__(self, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.net = MobileNetV2Features(norm_layer)
        self.stage_channels: Tuple[int, int, int, int] = (24, 32, 96, 320)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def imagenet_root(self) -> nn.Module:
        return self.net

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        stages = []
        for index, block in enumerate(self.net.features):
            x = block(x)
            if index in STAGE_ENDS:
                stages.append(x)
        return stages[0], stages[1], stages[2], stages[3]
