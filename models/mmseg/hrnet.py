"""mmseg's HRNetV2 backbone (``hrnetv2_w18_small``, ``hrnetv2_w18``, ``hrnetv2_w48``), keys as mmseg 0.26.

Stem: two 3x3 s2 conv-BN-ReLU (64; ``conv1/bn1``, ``conv2/bn2``); ``layer1``: Bottlenecks 64->256;
then stages 2-4 of HRModules (``stage{2,3,4}.<m>.{branches.b.i, fuse_layers.i.j}``) joined by
``transition{1,2,3}``. In a fusion, a lower-resolution branch j > i goes through a 1x1 conv + BN,
``Upsample(scale_factor=2^(j-i))`` (bilinear, align_corners False) and THEN a resize to branch i's
exact size; higher-resolution branches come in through chains of 3x3 s2 conv-BN (ReLU between,
not after the last). Sum, ReLU. Outputs: the 4 branches at 1/4, 1/8, 1/16, 1/32.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .common import NormLayer, resize
from .resnet_v1c import BasicBlock, Bottleneck

# stage: (num_modules, block, num_blocks per branch, channels per branch)
ARCHS: Dict[str, List[tuple]] = {
    "hrnetv2_w18_small": [(1, "bottleneck", (2,), (64,)), (1, "basic", (2, 2), (18, 36)),
                          (3, "basic", (2, 2, 2), (18, 36, 72)), (2, "basic", (2, 2, 2, 2), (18, 36, 72, 144))],
    "hrnetv2_w18": [(1, "bottleneck", (4,), (64,)), (1, "basic", (4, 4), (18, 36)),
                    (4, "basic", (4, 4, 4), (18, 36, 72)), (3, "basic", (4, 4, 4, 4), (18, 36, 72, 144))],
    "hrnetv2_w48": [(1, "bottleneck", (4,), (64,)), (1, "basic", (4, 4), (48, 96)),
                    (4, "basic", (4, 4, 4), (48, 96, 192)), (3, "basic", (4, 4, 4, 4), (48, 96, 192, 384))],
}
BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _layer(block, inplanes: int, planes: int, blocks: int, norm_layer: NormLayer) -> nn.Sequential:
    downsample = None
    if inplanes != planes * block.expansion:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, bias=False),
                                   norm_layer(planes * block.expansion))
    layers = [block(inplanes, planes, downsample=downsample, norm_layer=norm_layer)]
    layers += [block(planes * block.expansion, planes, norm_layer=norm_layer) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class Upsample(nn.Module):
    def __init__(self, scale_factor: int, align_corners: bool = False) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=self.align_corners)


class HRModule(nn.Module):
    def __init__(self, block, num_blocks: Sequence[int], in_channels: Sequence[int], channels: Sequence[int],
                 norm_layer: NormLayer) -> None:
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(_layer(block, in_channels[b], channels[b], num_blocks[b], norm_layer)
                                      for b in range(self.num_branches))
        width = [c * block.expansion for c in channels]
        self.fuse_layers = None
        if self.num_branches > 1:
            fuse_layers = nn.ModuleList()
            for i in range(self.num_branches):
                row = nn.ModuleList()
                for j in range(self.num_branches):
                    if j > i:
                        row.append(nn.Sequential(nn.Conv2d(width[j], width[i], 1, bias=False), norm_layer(width[i]),
                                                 Upsample(2 ** (j - i))))
                    elif j == i:
                        row.append(None)
                    else:
                        steps = []
                        for k in range(i - j):
                            last = k == i - j - 1
                            out = width[i] if last else width[j]
                            step = [nn.Conv2d(width[j], out, 3, 2, 1, bias=False), norm_layer(out)]
                            steps.append(nn.Sequential(*(step if last else step + [nn.ReLU(inplace=False)])))
                        row.append(nn.Sequential(*steps))
                fuse_layers.append(row)
            self.fuse_layers = fuse_layers
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: List[Tensor]) -> List[Tensor]:
        x = [branch(t) for branch, t in zip(self.branches, x)]
        if self.fuse_layers is None:
            return x
        fused = []
        for i in range(self.num_branches):
            y = 0
            for j in range(self.num_branches):
                if i == j:
                    y = y + x[j]
                elif j > i:
                    y = y + resize(self.fuse_layers[i][j](x[j]), x[i].shape[2:], False)
                else:
                    y = y + self.fuse_layers[i][j](x[j])
            fused.append(self.relu(y))
        return fused


def _transition(previous: Sequence[int], current: Sequence[int], norm_layer: NormLayer) -> nn.ModuleList:
    layers = nn.ModuleList()
    for i, out in enumerate(current):
        if i < len(previous):
            if out != previous[i]:
                layers.append(nn.Sequential(nn.Conv2d(previous[i], out, 3, 1, 1, bias=False), norm_layer(out),
                                            nn.ReLU(inplace=True)))
            else:
                layers.append(None)
        else:
            steps = []
            for j in range(i + 1 - len(previous)):
                in_channels = previous[-1]
                out_channels = out if j == i - len(previous) else in_channels
                steps.append(nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 2, 1, bias=False),
                                           norm_layer(out_channels), nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return layers


class HRNet(nn.Module):
    def __init__(self, arch: str, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError("HRNet arch must be one of %s, got %r" % (sorted(ARCHS), arch))
        stages = ARCHS[arch]
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = norm_layer(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        _, kind, blocks, channels = stages[0]
        block = BLOCKS[kind]
        self.layer1 = _layer(block, 64, channels[0], blocks[0], norm_layer)
        previous = [channels[0] * block.expansion]
        for index, (modules, kind, blocks, channels) in enumerate(stages[1:], start=2):
            block = BLOCKS[kind]
            width = [c * block.expansion for c in channels]
            self.add_module("transition%d" % (index - 1), _transition(previous, width, norm_layer))
            self.add_module("stage%d" % index, nn.Sequential(*[HRModule(block, blocks, width, channels, norm_layer)
                                                             for _ in range(modules)]))
            previous = width
        self.stage_channels = tuple(previous)

    def forward(self, x: Tensor):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        outputs = [self.layer1(x)]
        for index in (2, 3, 4):
            transition = getattr(self, "transition%d" % (index - 1))
            inputs = []
            for i, layer in enumerate(transition):
                if layer is None:
                    inputs.append(outputs[i])
                else:
                    inputs.append(layer(outputs[-1]))
            outputs = getattr(self, "stage%d" % index)(inputs)
        return tuple(outputs)
