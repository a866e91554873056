"""Building blocks with mmseg 0.26's module names (no mmcv): ConvModule, DepthwiseSeparableConvModule,
the decode-head base and the FCN head.

``ConvModule(in, out, k)`` = ``conv`` (no bias, followed by BN) + ``bn`` + ReLU, so its keys are
``<name>.conv.weight`` and ``<name>.bn.*`` as in mmseg checkpoints. ``DecodeHead`` creates
``conv_seg`` FIRST (as mmseg's BaseDecodeHead does, so it leads the head's keys), and its
``classify(feat)`` applies Dropout2d then ``conv_seg``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch.nn.functional as F
from torch import Tensor, nn

NormLayer = Callable[[int], nn.Module]


def resize(x: Tensor, size, align_corners: bool = False) -> Tensor:
    """mmseg's ``resize``: bilinear to ``size`` (H, W)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


class ConvModule(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, norm_layer: NormLayer = nn.BatchNorm2d,
                 activation: Optional[str] = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False)
        self.bn = norm_layer(out_channels)
        self.activate = {"relu": nn.ReLU(inplace=True), "relu6": nn.ReLU6(inplace=True), None: nn.Identity()}[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConvModule(nn.Module):
    """mmcv's: ``depthwise_conv`` (k x k, groups = in, BN-ReLU) then ``pointwise_conv`` (1x1, BN-ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, dilation: int = 1,
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, kernel_size, padding=padding, dilation=dilation,
                                         groups=in_channels, norm_layer=norm_layer)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1, norm_layer=norm_layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class DecodeHead(nn.Module):
    """mmseg BaseDecodeHead: ``conv_seg`` (1x1 with bias) after Dropout2d(``dropout``)."""

    def __init__(self, channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.channels = channels
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else None

    def classify(self, feat: Tensor) -> Tensor:
        if self.dropout is not None:
            feat = self.dropout(feat)
        return self.conv_seg(feat)


class FCNHead(DecodeHead):
    """mmseg FCNHead (``concat_input=False``): ``num_convs`` 3x3 ConvModules, then the classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, num_convs: int = 1,
                 kernel_size: int = 3, dropout: float = 0.1, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__(channels, num_classes, dropout)
        layers = [ConvModule(in_channels if i == 0 else channels, channels, kernel_size, padding=kernel_size // 2,
                             norm_layer=norm_layer) for i in range(num_convs)]
        self.convs = nn.Sequential(*layers) if layers else nn.Identity()

    def forward(self, x: Tensor):
        feat = self.convs(x)
        return self.classify(feat), feat
