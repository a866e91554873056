"""The backbones of MGD / CPS (TorchSemiSeg) DeepLabV3+, keys as their checkpoints have them.

- ``resnet18`` / ``resnet50`` / ``resnet101``: furnace ``ResNet(deep_stem=True)``. Stem
  ``conv1`` = Sequential(3x3 s2 3->w, BN, ReLU, 3x3 w->w, BN, ReLU, 3x3 w->2w) (keys ``conv1.{0,1,3,4,6}``),
  then ``bn1`` (2w), ReLU, max-pool 3/2; w = 32 for ResNet-18 (MGD's student), 64 otherwise.
  layer2 and layer3 stride 2; layer4 "multi-grid": no stride, every 3x3 conv of block k dilated
  2, 4, 8 (both convs of a BasicBlock, the 3x3 of a Bottleneck). Output stride 16.
- ``wide_resnet50_2`` (MGD's "WideResNet-34-2", ``wide_resnet.py``: a timm ResNet with Bottleneck
  [3, 4, 6, 3] and base width 128): 7x7 s2 stem ``conv1`` + ``bn1`` + max-pool; inner widths
  128..1024; the same multi-grid layer4. ``fc`` (2048 -> 1000) is built but never used, as in timm.
- ``mobilenetv2``: torchvision's MobileNetV2 (keys ``features.N.conv.*``; ``features.18`` not built,
  ``classifier.1`` built and unused, as the official copy). ``features[15:18]`` dilated 2, 4, 8;
  ``features[14]`` keeps its stride 2, so the official network runs at output stride 32
  (``output_stride=16``, not the official network: ``features[14]`` loses its stride too and
  14..17 are dilated 2, 2, 4, 8).

Each backbone returns (c1, c2, c3, c4): ResNets layer1..4; MobileNetV2 features 3, 6, 13, 17.
BatchNorm eps 1e-5, momentum 0.1 (the official configs).
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

from torch import Tensor, nn

from ..backbones.resnet import BasicBlockV1b, BottleneckV1b

NormLayer = Callable[[int], nn.Module]


def _nostride_dilate(block: nn.Module, dilation: int) -> None:
    """furnace ``_nostride_dilate``: no stride-2 conv in ``block``, every 3x3 conv dilated (padding too)."""
    for module in block.modules():
        if isinstance(module, nn.Conv2d):
            if module.stride == (2, 2):
                module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation = (dilation, dilation)
                module.padding = (dilation, dilation)


def _multi_grid(layer: nn.Sequential, dilations: Sequence[int]) -> None:
    """Block k of ``layer`` without stride, dilated ``dilations[k]`` (furnace: 2, 4, 8;
    torchvision's replace_stride_with_dilation: 1, 2, 2)."""
    for index, block in enumerate(layer):
        _nostride_dilate(block, int(dilations[min(index, len(dilations) - 1)]))


class CPSResNet(nn.Module):
    """furnace ResNet (deep stem) or timm wide ResNet (7x7 stem); layer4 multi-grid, output stride 16."""

    def __init__(self, block, layers: Sequence[int], norm_layer: NormLayer = nn.BatchNorm2d,
                 deep_stem: bool = True, stem_width: int = 64, base_width: int = 64, with_fc: bool = False,
                 layer4_dilations: Sequence[int] = (2, 4, 8)) -> None:
        super().__init__()
        if deep_stem:
            self.conv1 = nn.Sequential(
                nn.Conv2d(3, stem_width, 3, 2, 1, bias=False), norm_layer(stem_width), nn.ReLU(inplace=True),
                nn.Conv2d(stem_width, stem_width, 3, 1, 1, bias=False), norm_layer(stem_width), nn.ReLU(inplace=True),
                nn.Conv2d(stem_width, stem_width * 2, 3, 1, 1, bias=False))
            self.inplanes = stem_width * 2
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.inplanes = 64
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels: List[int] = []
        for index, (count, stride) in enumerate(zip(layers, (1, 2, 2, 2))):
            planes = 64 * 2 ** index
            width = planes * base_width // 64
            downsample = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                           norm_layer(planes * block.expansion))
            extra = {"width": width} if block is BottleneckV1b else {}
            blocks = [block(self.inplanes, planes, stride, 1, downsample, norm_layer=norm_layer, **extra)]
            self.inplanes = planes * block.expansion
            blocks += [block(self.inplanes, planes, norm_layer=norm_layer, **extra) for _ in range(count - 1)]
            self.add_module("layer%d" % (index + 1), nn.Sequential(*blocks))
            channels.append(self.inplanes)
        _multi_grid(self.layer4, layer4_dilations)
        if with_fc:
            self.fc = nn.Linear(self.inplanes, 1000)      # timm builds it; never called
        self.stage_channels: Tuple[int, ...] = tuple(channels)
        self.output_stride = 16
        # ImageNet files: a torchvision ResNet file fills bn1 and layer1..4 and leaves the deep stem at
        # its random init (as MGD's resnet18(), strict=False); a deep-stem file fills the stem too.
        self.imagenet_optional = ("conv1.*",) if deep_stem else ()

    def forward(self, x: Tensor):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return c1, c2, c3, self.layer4(c3)


class ConvBNReLU6(nn.Sequential):
    def __init__(self, inp: int, oup: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__(nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         norm_layer(oup), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """torchvision's block: keys ``conv.0`` (expand), ``conv.1`` (depthwise), ``conv.2`` (project), ``conv.3`` (BN)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, norm_layer: NormLayer) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, 1, norm_layer=norm_layer))
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden, norm_layer=norm_layer),
                   nn.Conv2d(hidden, oup, 1, bias=False), norm_layer(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
MOBILE_STAGES = (3, 6, 13, 17)


class CPSMobileNetV2(nn.Module):
    """torchvision MobileNetV2 as MGD builds it: ``features[15:18]`` dilated 2, 4, 8 (output stride 32).

    ``output_stride=16`` is the evident intent: ``features[14]`` loses its stride too and the
    dilations of 14..17 become 2, 2, 4, 8 (not the official network)."""

    def __init__(self, norm_layer: NormLayer = nn.BatchNorm2d, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError("deeplabv3plus_cps/mobilenetv2: output_stride must be 32 (official) or 16, got %r"
                             % (output_stride,))
        features: List[nn.Module] = [ConvBNReLU6(3, 32, 3, 2, norm_layer=norm_layer)]
        inp = 32
        for t, c, n, s in SETTINGS:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t, norm_layer))
                inp = c
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))   # built, never used (official)
        dilated = [(15, 2), (16, 4), (17, 8)] if output_stride == 32 else [(14, 2), (15, 2), (16, 4), (17, 8)]
        for index, dilation in dilated:
            _nostride_dilate(self.features[index], dilation)
        self.stage_channels: Tuple[int, ...] = (24, 32, 96, 320)
        self.output_stride = output_stride

    def forward(self, x: Tensor):
        outs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in MOBILE_STAGES:
                outs.append(x)
        return tuple(outs)


def build_cps_backbone(name: str, norm_layer: NormLayer = nn.BatchNorm2d, mobilenet_output_stride: int = 32
                       ) -> nn.Module:
    if name == "resnet18":
        return CPSResNet(BasicBlockV1b, (2, 2, 2, 2), norm_layer, stem_width=32)
    if name == "resnet50":
        return CPSResNet(BottleneckV1b, (3, 4, 6, 3), norm_layer, stem_width=64)
    if name == "resnet101":
        return CPSResNet(BottleneckV1b, (3, 4, 23, 3), norm_layer, stem_width=64)
    if name in ("wide_resnet50_2", "wrn34"):
        return CPSResNet(BottleneckV1b, (3, 4, 6, 3), norm_layer, deep_stem=False, base_width=128, with_fc=True)
    if name == "mobilenetv2":
        return CPSMobileNetV2(norm_layer, mobilenet_output_stride)
    raise ValueError("deeplabv3plus_cps backbone must be one of %s, got %r" % (" | ".join(BACKBONES), name))


BACKBONES = ("resnet18", "resnet50", "resnet101", "wide_resnet50_2", "mobilenetv2")
