"""mmseg 0.26 decode heads with mmseg's module names: PSPHead, ISAHead, DepthwiseSeparableASPPHead and
the HRNet FCN head over the resized and concatenated branches.

Every head's ``forward(stages)`` takes the backbone outputs and returns ``(logits, head_feat)``,
``head_feat`` being the input of Dropout2d + ``conv_seg``. All resizes are bilinear with the
model's ``align_corners`` (False in mmseg configs).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import ConvModule, DecodeHead, DepthwiseSeparableConvModule, FCNHead, NormLayer, resize


class PSPHead(DecodeHead):
    """Pyramid pooling (bins 1, 2, 3, 6): adaptive avg-pool -> 1x1 ConvModule in->channels each, resized
    back, concat [x, p1, p2, p3, p6], 3x3 ConvModule -> channels (``bottleneck``), classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, pool_scales: Sequence[int] = (1, 2, 3, 6),
                 dropout: float = 0.1, norm_layer: NormLayer = nn.BatchNorm2d, align_corners: bool = False,
                 in_index: int = 3) -> None:
        super().__init__(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvModule(in_channels, channels, 1, norm_layer=norm_layer))
            for scale in pool_scales)
        self.bottleneck = ConvModule(in_channels + len(pool_scales) * channels, channels, 3, padding=1,
                                     norm_layer=norm_layer)

    def forward(self, stages: Sequence[Tensor]):
        x = stages[self.in_index]
        outs = [x] + [resize(module(x), x.shape[2:], self.align_corners) for module in self.psp_modules]
        feat = self.bottleneck(torch.cat(outs, dim=1))
        return self.classify(feat), feat


def _project(in_channels: int, channels: int, num_convs: int, norm_layer: NormLayer) -> nn.Module:
    """mmseg ``build_project`` with ConvModules: one module, or a Sequential of ``num_convs``."""
    convs = [ConvModule(in_channels if i == 0 else channels, channels, 1, norm_layer=norm_layer) for i in range(num_convs)]
    return convs[0] if len(convs) == 1 else nn.Sequential(*convs)


class SelfAttentionBlock(nn.Module):
    """ISANet's relation: q, k = two 1x1 ConvModules each (c->a->a), v = 1x1 conv with bias (c->c),
    ``softmax(q^T k / sqrt(a))`` over keys, context = attention x v, then ``output_project``."""

    def __init__(self, channels: int, attention_channels: int, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.attention_channels = attention_channels
        self.key_project = _project(channels, attention_channels, 2, norm_layer)
        self.query_project = _project(channels, attention_channels, 2, norm_layer)
        self.value_project = nn.Conv2d(channels, channels, 1)
        self.output_project = _project(channels, channels, 1, norm_layer)

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        query = self.query_project(x).flatten(2).permute(0, 2, 1)
        key = self.key_project(x).flatten(2)
        value = self.value_project(x).flatten(2).permute(0, 2, 1)
        attention = torch.softmax(torch.matmul(query, key) * self.attention_channels ** -0.5, dim=-1)
        context = torch.matmul(attention, value).permute(0, 2, 1).reshape(batch, -1, *x.shape[2:])
        return self.output_project(context)


class ISAHead(DecodeHead):
    """Interlaced sparse self-attention: ``in_conv`` (3x3, kept as the residual), zero-pad to multiples of
    ``down_factor`` (pad // 2 before, the rest after), a global relation over the interlaced groups,
    a local relation inside each cell, crop, ``out_conv`` (1x1) on [attention, residual], classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, isa_channels: int = 256,
                 down_factor: Sequence[int] = (8, 8), dropout: float = 0.1, norm_layer: NormLayer = nn.BatchNorm2d,
                 in_index: int = 3) -> None:
        super().__init__(channels, num_classes, dropout)
        self.in_index = in_index
        self.down_factor = tuple(down_factor)
        self.in_conv = ConvModule(in_channels, channels, 3, padding=1, norm_layer=norm_layer)
        self.global_relation = SelfAttentionBlock(channels, isa_channels, norm_layer)
        self.local_relation = SelfAttentionBlock(channels, isa_channels, norm_layer)
        self.out_conv = ConvModule(channels * 2, channels, 1, norm_layer=norm_layer)

    def forward(self, stages: Sequence[Tensor]):
        x = self.in_conv(stages[self.in_index])
        residual = x
        n, c, h, w = x.shape
        loc_h, loc_w = self.down_factor
        glb_h, glb_w = -(-h // loc_h), -(-w // loc_w)
        pad_h, pad_w = glb_h * loc_h - h, glb_w * loc_w - w
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        x = x.view(n, c, glb_h, loc_h, glb_w, loc_w).permute(0, 3, 5, 1, 2, 4).reshape(-1, c, glb_h, glb_w)
        x = self.global_relation(x)
        x = x.view(n, loc_h, loc_w, c, glb_h, glb_w).permute(0, 4, 5, 3, 1, 2).reshape(-1, c, loc_h, loc_w)
        x = self.local_relation(x)
        x = x.view(n, glb_h, glb_w, c, loc_h, loc_w).permute(0, 3, 1, 4, 2, 5).reshape(n, c, glb_h * loc_h,
                                                                                       glb_w * loc_w)
        if pad_h > 0 or pad_w > 0:
            x = x[:, :, pad_h // 2:pad_h // 2 + h, pad_w // 2:pad_w // 2 + w]
        feat = self.out_conv(torch.cat([x, residual], dim=1))
        return self.classify(feat), feat


class DepthwiseSeparableASPPHead(DecodeHead):
    """DeepLabV3+: [image pool (global avg, 1x1, resized), 1x1, depthwise-separable 3x3 at d 12/24/36],
    3x3 ``bottleneck`` 5c->c, resized to c1's size and concatenated with ``c1_bottleneck`` (1x1 ->
    c1_channels), two depthwise-separable 3x3 modules (``sep_bottleneck``), classifier (stride 4)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, c1_in_channels: int, c1_channels: int = 48,
                 dilations: Sequence[int] = (1, 12, 24, 36), dropout: float = 0.1,
                 norm_layer: NormLayer = nn.BatchNorm2d, align_corners: bool = False, in_index: int = 3) -> None:
        super().__init__(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvModule(in_channels, channels, 1, norm_layer=norm_layer))
        self.aspp_modules = nn.ModuleList(
            ConvModule(in_channels, channels, 1, norm_layer=norm_layer) if d == 1 else
            DepthwiseSeparableConvModule(in_channels, channels, 3, padding=d, dilation=d, norm_layer=norm_layer)
            for d in dilations)
        self.bottleneck = ConvModule((len(dilations) + 1) * channels, channels, 3, padding=1, norm_layer=norm_layer)
        self.c1_bottleneck = ConvModule(c1_in_channels, c1_channels, 1, norm_layer=norm_layer)
        self.sep_bottleneck = nn.Sequential(
            DepthwiseSeparableConvModule(channels + c1_channels, channels, 3, padding=1, norm_layer=norm_layer),
            DepthwiseSeparableConvModule(channels, channels, 3, padding=1, norm_layer=norm_layer))

    def forward(self, stages: Sequence[Tensor]):
        x = stages[self.in_index]
        outs = [resize(self.image_pool(x), x.shape[2:], self.align_corners)] + [m(x) for m in self.aspp_modules]
        feat = self.bottleneck(torch.cat(outs, dim=1))
        c1 = self.c1_bottleneck(stages[0])
        feat = torch.cat([resize(feat, c1.shape[2:], self.align_corners), c1], dim=1)
        feat = self.sep_bottleneck(feat)
        return self.classify(feat), feat


class ResizeConcatFCNHead(FCNHead):
    """mmseg FCNHead with ``input_transform='resize_concat'`` (HRNetV2): every branch resized to the
    first's size and concatenated, one 1x1 ConvModule, no dropout, ``conv_seg``."""

    def __init__(self, in_channels: Sequence[int], channels: int, num_classes: int,
                 norm_layer: NormLayer = nn.BatchNorm2d, align_corners: bool = False) -> None:
        super().__init__(sum(in_channels), channels, num_classes, num_convs=1, kernel_size=1, dropout=0.0,
                         norm_layer=norm_layer)
        self.align_corners = align_corners

    def forward(self, stages: Sequence[Tensor]):
        size = stages[0].shape[2:]
        # every branch is resized, the first to its own size too (an identity, counted by mmseg's FLOPs)
        x = torch.cat([resize(s, size, self.align_corners) for s in stages], dim=1)
        return super().forward(x)
