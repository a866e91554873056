"""Segmentation heads of the Af-DCD / CIRKD zoo: DeepLabV3 (ASPP), PSPNet, FCN aux head.

Public API:
    resolve_head_width(kind, in_channels, head_width) -> int
        kind "deeplab" or "psp"; head_width None / "afdcd" (Af-DCD = CIRKD before 2025 widths),
        "cirkd_v2" (CIRKD@dab64db widths), or an int (also a digit string).
    DeepLabHead(in_channels, num_class, width, norm_layer)   forward(x) -> (logits, head_feat)
    PSPHead(in_channels, num_class, width, norm_layer)       forward(x) -> (logits, head_feat)
    FCNHead(in_channels, num_class, norm_layer)              forward(x) -> logits

Heads are looked up by kind in ``HEADS`` (``register_head(kind)`` adds one). A head declares the
backbone stages it reads in ``stages`` (``("c4",)`` here; a DeepLabV3+ head reads ``("c1", "c4")``)
and ``SegModel`` calls ``head(*[stage for each name])``.

Module names reproduce the official state_dict keys (``aspp.b0.0``, ``aspp.b1.block.0``,
``aspp.b4.gap.1``, ``aspp.project.0``, ``block.0/1/4``; ``psp.conv1..4``, ``block``,
``classifier``; aux ``block.0/1/4``). ``head_feat`` is taken after the head's 3x3
conv-BN-ReLU-Dropout(0.1), before the 1x1 classifier, so in training it is already dropped out.
Every upsampling inside the heads is bilinear with ``align_corners=True`` (as official).
"""
from typing import Callable, Dict, Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormLayer = Callable[[int], nn.Module]
HeadWidth = Optional[Union[int, str]]

HEAD_WIDTH_PRESETS = ("afdcd", "cirkd_v2")
HEADS: Dict[str, Type[nn.Module]] = {}


def register_head(kind: str) -> Callable[[Type[nn.Module]], Type[nn.Module]]:
    """Class decorator: ``HEADS[kind] = cls``; the class takes (in_channels, num_class, width, norm_layer)."""
    def wrap(cls: Type[nn.Module]) -> Type[nn.Module]:
        if kind in HEADS and HEADS[kind] is not cls:
            raise ValueError("head kind %r registered twice" % kind)
        HEADS[kind] = cls
        return cls
    return wrap

# Af-DCD widths (identical to CIRKD up to 2d8ad0f), keyed by the head input channels.
_AFDCD = {"deeplab": {512: 128, 320: 128, 2048: 256}, "psp": {512: 128, 320: 128, 2048: 512}}
# CIRKD@dab64db ("CIRKDV2"): DeepLabV3 on ResNets 512 wide, PSP on 2048 channels 256 wide.
_CIRKD_V2 = {"deeplab": {512: 512, 320: 128, 2048: 512}, "psp": {512: 128, 320: 128, 2048: 256}}


def resolve_head_width(kind: str, in_channels: int, head_width: HeadWidth = None) -> int:
    """The width of a DeepLabV3 / PSP head for an input of `in_channels` channels."""
    if isinstance(head_width, str) and head_width.strip().isdigit():
        head_width = int(head_width)
    if isinstance(head_width, bool):
        raise ValueError("head_width must be None, a preset %s or a positive int, got %r"
                         % (HEAD_WIDTH_PRESETS, head_width))
    if isinstance(head_width, int):
        if head_width <= 0:
            raise ValueError("head_width must be a positive int, got %d" % head_width)
        return head_width
    if head_width in (None, "None", "afdcd", "default"):
        table = _AFDCD
    elif head_width == "cirkd_v2":
        table = _CIRKD_V2
    else:
        raise ValueError("unknown head_width %r; use None (Af-DCD widths), one of %s, or an int"
                         % (head_width, HEAD_WIDTH_PRESETS))
    if in_channels not in table[kind]:
        raise ValueError("no default %s head width for %d input channels; pass head_width=<int>"
                         % (kind, in_channels))
    return table[kind][in_channels]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, norm_layer: NormLayer,
                  dilation: int = 1) -> list:
    padding = dilation if kernel == 3 else 0
    return [nn.Conv2d(in_channels, out_channels, kernel, padding=padding, dilation=dilation, bias=False),
            norm_layer(out_channels), nn.ReLU(inplace=True)]


class _ASPPConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, rate: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.block = nn.Sequential(*_conv_bn_relu(in_channels, out_channels, 3, norm_layer, rate))

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class _ASPPPooling(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                 *_conv_bn_relu(in_channels, out_channels, 1, norm_layer))

    def forward(self, x: Tensor) -> Tensor:
        pool = self.gap(x)
        return F.interpolate(pool, x.shape[2:], mode="bilinear", align_corners=True)


class ASPP(nn.Module):
    def __init__(self, in_channels: int, width: int, rates: Tuple[int, int, int] = (12, 24, 36),
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.b0 = nn.Sequential(*_conv_bn_relu(in_channels, width, 1, norm_layer))
        self.b1 = _ASPPConv(in_channels, width, rates[0], norm_layer)
        self.b2 = _ASPPConv(in_channels, width, rates[1], norm_layer)
        self.b3 = _ASPPConv(in_channels, width, rates[2], norm_layer)
        self.b4 = _ASPPPooling(in_channels, width, norm_layer)
        self.project = nn.Sequential(*_conv_bn_relu(5 * width, width, 1, norm_layer), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.b0(x), self.b1(x), self.b2(x), self.b3(x), self.b4(x)]
        return self.project(torch.cat(branches, dim=1))


@register_head("deeplab")
class DeepLabHead(nn.Module):
    stages = ("c4",)

    def __init__(self, in_channels: int, num_class: int, width: int,
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.aspp = ASPP(in_channels, width, (12, 24, 36), norm_layer)
        self.block = nn.Sequential(*_conv_bn_relu(width, width, 3, norm_layer), nn.Dropout(0.1),
                                   nn.Conv2d(width, num_class, 1))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        head_feat = self.block[0:4](self.aspp(x))
        return self.block[4](head_feat), head_feat


class _PyramidPooling(nn.Module):
    def __init__(self, in_channels: int, norm_layer: NormLayer) -> None:
        super().__init__()
        out_channels = in_channels // 4
        self.bins = (1, 2, 3, 6)
        self.conv1 = nn.Sequential(*_conv_bn_relu(in_channels, out_channels, 1, norm_layer))
        self.conv2 = nn.Sequential(*_conv_bn_relu(in_channels, out_channels, 1, norm_layer))
        self.conv3 = nn.Sequential(*_conv_bn_relu(in_channels, out_channels, 1, norm_layer))
        self.conv4 = nn.Sequential(*_conv_bn_relu(in_channels, out_channels, 1, norm_layer))

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[2:]
        feats = [x]
        for bins, conv in zip(self.bins, (self.conv1, self.conv2, self.conv3, self.conv4)):
            pooled = conv(F.adaptive_avg_pool2d(x, bins))
            feats.append(F.interpolate(pooled, size, mode="bilinear", align_corners=True))
        return torch.cat(feats, dim=1)


@register_head("psp")
class PSPHead(nn.Module):
    stages = ("c4",)

    def __init__(self, in_channels: int, num_class: int, width: int,
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.psp = _PyramidPooling(in_channels, norm_layer)
        self.block = nn.Sequential(*_conv_bn_relu(2 * in_channels, width, 3, norm_layer), nn.Dropout(0.1))
        self.classifier = nn.Conv2d(width, num_class, 1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        head_feat = self.block(self.psp(x))
        return self.classifier(head_feat), head_feat


class FCNHead(nn.Module):
    """The auxiliary head on c3: 3x3 conv(c -> c/4)-BN-ReLU-Dropout(0.1)-1x1 conv(c/4 -> classes)."""

    def __init__(self, in_channels: int, num_class: int, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        inter = in_channels // 4
        self.block = nn.Sequential(*_conv_bn_relu(in_channels, inter, 3, norm_layer), nn.Dropout(0.1),
                                   nn.Conv2d(inter, num_class, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)
