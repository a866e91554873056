"""DeepLabV3+ of CPS / MGD (``deeplabv3plus_cps``): the networks of MGD's students and teachers.

Reference: JayQine/MGD-SSSS@9309105 ``exp.*/network.py`` (``SingleSmallNetwork``,
``SingleLargeNetwork``, ``SingleWideNetwork``; the CPS teacher runs use the same network), from
charlesCXK/TorchSemiSeg. Keys are the official branch keys (``backbone.*``, ``head.aspp.*``,
``head.reduce.*``, ``head.last_conv.*``, ``classifier.*``); a released checkpoint's
``branch1.`` prefix is stripped and its other branches dropped when loading.

    ASPP (seamseg kind): [1x1, 3x3 d6, 3x3 d12, 3x3 d18] -> 256 each, concat -> BN -> LeakyReLU(0.01)
        -> 1x1 -> 256; image pool: global mean -> 1x1 -> BN -> LeakyReLU -> 1x1, ADDED -> BN -> LeakyReLU
    low level: 1x1 c1 -> 48 (MobileNetV2: 24 -> 24), BN, ReLU
    decoder: [ASPP up to c1 (bilinear, align_corners=True), low] -> 3x3 -> 256, BN, ReLU, 3x3, BN, ReLU
        = ``head_feat`` (256 ch, stride 4)
    classifier 1x1 (bias) -> ``logits`` upsampled to the input inside the network (align_corners=True)

Outputs (``SegOutputs``): ``logits`` (input size, as the official ``pred``), ``head_feat``,
``c1..c4``. Inputs: RGB ImageNet mean/std (``x/255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)``).
There is no aux head and no dropout. Head convs are kaiming-normal (fan_in, relu) initialised, as
MGD's ``init_weight`` does for the trained branch.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..meta import IMAGENET_RGB, ModelMeta
from ..outputs import SegOutputs
from ..registry import register_model
from .backbones import BACKBONES, NormLayer, build_cps_backbone

CPS_META = ModelMeta(input_norm=IMAGENET_RGB, align_corners=True, head_prefixes=("head.", "classifier."),
                     classifier_keys=("classifier.*",),
                     key_prefix_rules=(("branch1.", ""),), drop_prefixes=("branch2.", "branch3."))


class CPSASPP(nn.Module):
    def __init__(self, in_channels: int, out_channels: int = 256, rates=(6, 12, 18), hidden: int = 256,
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.map_convs = nn.ModuleList([nn.Conv2d(in_channels, hidden, 1, bias=False)] + [
            nn.Conv2d(in_channels, hidden, 3, padding=r, dilation=r, bias=False) for r in rates])
        self.map_bn = norm_layer(hidden * 4)
        self.global_pooling_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.global_pooling_bn = norm_layer(hidden)
        self.red_conv = nn.Conv2d(hidden * 4, out_channels, 1, bias=False)
        self.pool_red_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.red_bn = norm_layer(out_channels)
        self.leak_relu = nn.LeakyReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.red_conv(self.leak_relu(self.map_bn(torch.cat([m(x) for m in self.map_convs], dim=1))))
        pool = x.view(x.size(0), x.size(1), -1).mean(dim=-1).view(x.size(0), x.size(1), 1, 1)
        pool = self.pool_red_conv(self.leak_relu(self.global_pooling_bn(self.global_pooling_conv(pool))))
        out = out + pool.repeat(1, 1, x.size(2), x.size(3))
        return self.leak_relu(self.red_bn(out))


class CPSHead(nn.Module):
    def __init__(self, high_channels: int, low_channels: int, low_out: int,
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.aspp = CPSASPP(high_channels, 256, norm_layer=norm_layer)
        self.reduce = nn.Sequential(nn.Conv2d(low_channels, low_out, 1, bias=False), norm_layer(low_out), nn.ReLU())
        self.last_conv = nn.Sequential(
            nn.Conv2d(256 + low_out, 256, 3, 1, 1, bias=False), norm_layer(256), nn.ReLU(),
            nn.Conv2d(256, 256, 3, 1, 1, bias=False), norm_layer(256), nn.ReLU())

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        high = self.aspp(high)
        low = self.reduce(low)
        high = F.interpolate(high, size=low.shape[2:], mode="bilinear", align_corners=True)
        return self.last_conv(torch.cat((high, low), dim=1))


class DeepLabV3PlusCPS(nn.Module):
    meta = CPS_META
    output_names = ("logits", "head_feat", "c1", "c2", "c3", "c4")

    def __init__(self, backbone: str, num_class: int, norm_layer: NormLayer = nn.BatchNorm2d,
                 mobilenet_output_stride: int = 32) -> None:
        super().__init__()
        self.backbone = build_cps_backbone(backbone, norm_layer, mobilenet_output_stride)
        c1, c2, c3, c4 = self.backbone.stage_channels
        low_out = 24 if backbone == "mobilenetv2" else 48
        self.head = CPSHead(c4, c1, low_out, norm_layer)
        self.classifier = nn.Conv2d(256, num_class, 1, bias=True)
        self.num_class = num_class
        self.aux = False
        self.head_width = 256
        self.out_channels: Dict[str, int] = {"logits": num_class, "head_feat": 256, "c1": c1, "c2": c2, "c3": c3,
                                             "c4": c4}
        for module in [self.head, self.classifier]:
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def predict(self, scores: Tensor) -> Tensor:
        return scores.argmax(1)

    def forward(self, x: Tensor) -> SegOutputs:
        stages = self.backbone(x)
        head_feat = self.head(stages[0], stages[-1])
        logits = F.interpolate(self.classifier(head_feat), size=x.shape[2:], mode="bilinear", align_corners=True)
        return SegOutputs([logits, head_feat] + list(stages), self.output_names)


@register_model("deeplabv3plus_cps", meta=CPS_META, has_aux=False)
def deeplabv3plus_cps(backbone: str, num_class: int = 21, aux: bool = False,
                      norm_layer: NormLayer = nn.BatchNorm2d, mobilenet_output_stride: int = 32,
                      head_width: Optional[int] = None) -> DeepLabV3PlusCPS:
    if aux:
        raise ValueError("deeplabv3plus_cps has no aux head (as the CPS/MGD networks); build it with aux=False")
    if head_width not in (None, 256):
        raise ValueError("deeplabv3plus_cps has a fixed 256-wide decoder, got head_width=%r" % (head_width,))
    if backbone not in BACKBONES:
        raise ValueError("deeplabv3plus_cps backbone must be one of %s, got %r" % (" | ".join(BACKBONES), backbone))
    return DeepLabV3PlusCPS(backbone, num_class, norm_layer, mobilenet_output_stride)
