"""DKD's DeepLabV3 with one classifier head per incremental step (``dkd_deeplabv3``).

Reference: cvlab-yonsei/DKD@fb4693f ``models/model.py:DeepLabV3`` (+ ``modules/aspp.py``,
``modules/resent_official.py``). Keys are the official ones (``backbone.*`` = torchvision's
ResNet-101 without ``fc``, ``aspp.*``, ``cls.{0..t+1}``), so DKD checkpoints load as they are.

    backbone: torchvision ResNet-101, output stride 16 (layer4 without stride, 3x3 dilations 1, 2, 2)
    ASPP: [1x1, 3x3 d6, 3x3 d12, 3x3 d18, image pool] -> 256 each (conv-BN-ReLU), concat 1280
          -> ``project`` 1x1-BN-ReLU-Dropout(0.1) -> ``last_conv`` 3x3-BN-ReLU = f (``head_feat``)
    heads: ``cls.0`` 256 -> 1 (auxiliary, on f.detach()), ``cls.s`` 256 -> |C_s| per step, with bias
    logits = bilinear(concat_s cls.s(f), input size, align_corners=False); channel c = class c
    pos_logits / neg_logits = sum_d max(W, 0)_cd f_d / min(W, 0)_cd f_d over the class heads (no bias)

``classes`` lists the head widths of the steps so far (VOC 15-1 step 2: [15, 1, 1]); the model has
1 + sum(classes) logit channels. ``init_novel_classifier()`` copies ``cls.0`` into every row of the
last head (a new step's initialisation). Sigmoid outputs: ``predict`` = argmax of sigmoid over the
class channels, background (0) where no sigmoid exceeds 0.5. Input: RGB ImageNet mean/std.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones.resnet import BasicBlockV1b, BottleneckV1b
from .cps.backbones import CPSResNet, NormLayer
from .meta import IMAGENET_RGB, ModelMeta
from .outputs import SegOutputs
from .registry import register_model

# torchvision layouts; DKD itself uses ResNet-101 (the smaller ones serve quick experiments and tests)
BACKBONES = {"resnet101": (BottleneckV1b, (3, 4, 23, 3)), "resnet50": (BottleneckV1b, (3, 4, 6, 3)),
             "resnet18": (BasicBlockV1b, (2, 2, 2, 2))}
DKD_META = ModelMeta(input_norm=IMAGENET_RGB, align_corners=False, head_prefixes=("aspp.", "cls."),
                     classifier_keys=("cls.*",))


def head_outputs(feat: Tensor, heads: nn.ModuleList, size) -> tuple:
    """(logits at ``size``, positive parts, negative parts) of DKD's heads on the feature ``feat``:
    the aux head ``heads[0]`` sees ``feat.detach()``; the parts leave out the aux head and the bias."""
    small = torch.cat([heads[0](feat.detach())] + [head(feat) for head in heads[1:]], dim=1)
    logits = F.interpolate(small, size=tuple(size), mode="bilinear", align_corners=False)
    weight = torch.cat([head.weight.flatten(1) for head in heads[1:]], dim=0)
    pos = torch.einsum("nchw,kc->nkhw", feat, weight.clamp_min(0))
    neg = torch.einsum("nchw,kc->nkhw", feat, weight.clamp_max(0))
    return logits, pos, neg


@torch.no_grad()
def init_novel_classifier(heads: nn.ModuleList) -> None:
    """Every row of the newest head := the auxiliary head ``heads[0]`` (weight and bias)."""
    heads[-1].weight.copy_(heads[0].weight.expand_as(heads[-1].weight))
    heads[-1].bias.copy_(heads[0].bias.expand_as(heads[-1].bias))


def sigmoid_predict(scores: Tensor) -> Tensor:
    """Argmax of the class sigmoids (channels 1..), background 0 where none exceeds 0.5."""
    probs = torch.sigmoid(scores[:, 1:])
    best, index = probs.max(dim=1)
    return torch.where(best > 0.5, index + 1, torch.zeros_like(index))


class ConvBNReLU(nn.Sequential):
    def __init__(self, inp: int, oup: int, kernel: int, dilation: int = 1, norm_layer: NormLayer = nn.BatchNorm2d):
        pad = dilation if kernel == 3 else 0
        super().__init__(nn.Conv2d(inp, oup, kernel, padding=pad, dilation=dilation, bias=False), norm_layer(oup),
                         nn.ReLU(inplace=True))


class ASPPPooling(nn.Sequential):
    def __init__(self, inp: int, oup: int, norm_layer: NormLayer) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(inp, oup, 1, bias=False), norm_layer(oup), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DKDASPP(nn.Module):
    def __init__(self, inp: int = 2048, oup: int = 256, rates=(6, 12, 18), norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        self.convs = nn.ModuleList([ConvBNReLU(inp, oup, 1, norm_layer=norm_layer)]
                                   + [ConvBNReLU(inp, oup, 3, r, norm_layer) for r in rates]
                                   + [ASPPPooling(inp, oup, norm_layer)])
        self.project = nn.Sequential(nn.Conv2d(5 * oup, oup, 1, bias=False), norm_layer(oup), nn.ReLU(inplace=True),
                                     nn.Dropout(0.1))
        self.last_conv = ConvBNReLU(oup, oup, 3, norm_layer=norm_layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.last_conv(self.project(torch.cat([conv(x) for conv in self.convs], dim=1)))


class DKDDeepLabV3(nn.Module):
    meta = DKD_META
    output_names = ("logits", "head_feat", "pos_logits", "neg_logits", "c4")

    def __init__(self, classes: Sequence[int], norm_layer: NormLayer = nn.BatchNorm2d, backbone: str = "resnet101") -> None:
        super().__init__()
        self.classes: List[int] = [int(c) for c in classes]
        block, layers = BACKBONES[backbone]
        self.backbone = CPSResNet(block, layers, norm_layer, deep_stem=False, layer4_dilations=(1, 2, 2))
        c4 = self.backbone.stage_channels[3]
        self.aspp = DKDASPP(c4, 256, norm_layer=norm_layer)
        self.cls = nn.ModuleList([nn.Conv2d(256, c, 1, bias=True) for c in [1] + self.classes])
        for head in self.cls:
            nn.init.kaiming_normal_(head.weight)
        self.num_class = 1 + sum(self.classes)
        self.aux = False
        self.head_width = 256
        self.out_channels: Dict[str, int] = {"logits": self.num_class, "head_feat": 256, "c4": c4,
                                             "pos_logits": sum(self.classes), "neg_logits": sum(self.classes)}

    def init_novel_classifier(self) -> None:
        init_novel_classifier(self.cls)

    def predict(self, scores: Tensor) -> Tensor:
        return sigmoid_predict(scores)

    def forward(self, x: Tensor) -> SegOutputs:
        c4 = self.backbone(x)[-1]
        feat = self.aspp(c4)
        logits, pos, neg = head_outputs(feat, self.cls, x.shape[-2:])
        return SegOutputs([logits, feat, pos, neg, c4], self.output_names)


@register_model("dkd_deeplabv3", meta=DKD_META, has_aux=False)
def dkd_deeplabv3(backbone: str = "resnet101", num_class: Optional[int] = None, aux: bool = False,
                  norm_layer: NormLayer = nn.BatchNorm2d, classes: Optional[Sequence[int]] = None,
                  head_width: Optional[int] = None) -> DKDDeepLabV3:
    """``classes``: head widths per step; without it one head of ``num_class - 1`` classes. ``aux`` is
    accepted for the auxiliary head ``cls.0``, which every DKD model has (it is a logit channel)."""
    if backbone not in BACKBONES:
        raise ValueError("dkd_deeplabv3 backbone must be one of %s (DKD: resnet101), got %r"
                         % (" | ".join(BACKBONES), backbone))
    if head_width not in (None, 256):
        raise ValueError("dkd_deeplabv3 has a fixed 256-wide ASPP, got head_width=%r" % (head_width,))
    if classes is None:
        if not num_class or num_class < 2:
            raise ValueError("dkd_deeplabv3 needs classes=[per-step widths] or num_class >= 2 (1 aux + classes)")
        classes = [num_class - 1]
    model = DKDDeepLabV3(classes, norm_layer, backbone)
    if num_class is not None and num_class != model.num_class:
        raise ValueError("dkd_deeplabv3: num_class %d != 1 + sum(classes) = %d" % (num_class, model.num_class))
    return model
