"""Af-DCD's learnable parts: the official projectors and the align conv folded into the first one.

``PlainProjector`` / ``EnhancedProjector`` keep the official module names (``proj.conv1`` ...,
``proj.block1`` ...) and expose ``first_conv`` / ``after_first_conv`` so ``losses/af_dcd.py`` can
replace ``first_conv(align(s) * keep)`` by ``folded_masked_conv`` (same value, fewer FLOPs).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EnhancedProjector(nn.Module):
    """x1 = ReLU(block1(x)); x2 = ReLU(block2(x1)); out = (adapt1(x1) + adapt2(x2)) / 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.block2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.adapt1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.adapt2 = nn.Conv2d(channels, channels, 3, padding=1)

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.block1

    def after_first_conv(self, first: Tensor) -> Tensor:
        x1 = F.relu(first)
        x2 = F.relu(self.block2(x1))
        return (self.adapt1(x1) + self.adapt2(x2)) / 2.0

    def forward(self, x: Tensor) -> Tensor:
        return self.after_first_conv(self.block1(x))


class PlainProjector(nn.Sequential):
    """conv1 (3x3) -> ReLU -> conv2 (3x3), the official ``nn.Sequential`` (same state_dict keys)."""

    def __init__(self, channels: int) -> None:
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(channels, channels, 3, padding=1)),
            ("relu", nn.ReLU(inplace=True)),
            ("conv2", nn.Conv2d(channels, channels, 3, padding=1)),
        ]))

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.conv1

    def after_first_conv(self, first: Tensor) -> Tensor:
        return self.conv2(self.relu(first))


def plain_projector(channels: int) -> PlainProjector:
    return PlainProjector(channels)


def folded_masked_conv(align: nn.Conv2d, conv: nn.Conv2d, student_feat: Tensor, keep_mask: Tensor) -> Tensor:
    """``conv(align(student_feat) * keep_mask)`` without building the Ct-channel aligned map.

    align (1x1, W_a: Ct x Cs, bias b_a) and the mask are linear, so
        conv(keep * (W_a s + b_a)) = conv2d(keep * s, W (x) W_a) + conv2d(keep, W . b_a) + b
    with (W (x) W_a)[o, i] = sum_j W[o, j] W_a[j, i] (a Ct x Cs x 3 x 3 kernel: reads Cs channels, not Ct)
    and the bias folded into a one-channel kernel on the mask, computed as one conv over the Cs + 1
    channels [keep * s, keep] (zero padding of the masked map and of the mask agree, so the borders
    are exact). Autograd gives the exact gradients of W, W_a, b_a.
    """
    align_weight = align.weight.reshape(align.weight.shape[0], align.weight.shape[1])
    weight = torch.einsum("ojhw,ji->oihw", conv.weight, align_weight)
    inputs = student_feat * keep_mask
    if align.bias is not None:
        # The bias term rides along as one more input channel (the mask itself): one conv, not two.
        bias_kernel = torch.einsum("ojhw,j->ohw", conv.weight, align.bias).unsqueeze(1)
        weight = torch.cat([weight, bias_kernel], dim=1)
        inputs = torch.cat([inputs, keep_mask.expand(inputs.shape[0], 1, -1, -1)], dim=1)
    return F.conv2d(inputs, weight, conv.bias, conv.stride, conv.padding, conv.dilation)


def folding_pays(student_channels: int, teacher_channels: int, kernel_area: int = 9) -> bool:
    """Per pixel the folded form costs k*Ct*Cs multiply-adds instead of Cs*Ct + k*Ct*Ct."""
    return kernel_area * student_channels < student_channels + kernel_area * teacher_channels
