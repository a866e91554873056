"""DeepLabV3 of the Af-DCD / CIRKD zoo: ``deeplabv3`` (ResNet) and ``deeplab_mobile`` (MobileNetV2).

Public API (registered builders, normally reached through ``get_segmentation_model``):
    deeplabv3(backbone, num_class=19, aux=False, norm_layer=nn.BatchNorm2d, head_width=None)
        backbone resnet18 | resnet50 | resnet101; forward -> [logits, aux_logits, c4, head_feat]
        (aux=True) or [logits, c4, head_feat] (aux=False; the official code crashes there)
    deeplab_mobile(backbone="mobilenetv2", num_class=19, aux=False, norm_layer=..., head_width=None)
        forward -> [logits, c4, head_feat]; no aux head (as official)
Both attach c1..c4 by name. Reference: OSVAI/Af-DCD@5b086a7 models/deeplabv3.py,
models/deeplabv3_mobile.py. ASPP rates 12/24/36; head width 128 (512/320-ch input) or 256
(2048-ch) by default, 512 on ResNets with head_width="cirkd_v2".
"""
from typing import Callable, Optional, Union

from torch import nn

from .registry import register_model
from .segbase import SegModel

RESNETS = ("resnet18", "resnet50", "resnet101")


def check_backbone(model: str, backbone: Optional[str], allowed: tuple, other_model: str) -> str:
    """Return the backbone name, or raise a one-line error naming the model to use instead."""
    if backbone in (None, "None", "") and len(allowed) == 1:
        return allowed[0]
    if backbone not in allowed:
        raise ValueError("%s takes backbone %s, got %r (use %s for the other backbones)"
                         % (model, " | ".join(allowed), backbone, other_model))
    return backbone


class DeepLabV3(SegModel):
    def __init__(self, backbone: str, num_class: int = 19, aux: bool = False,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 head_width: Optional[Union[int, str]] = None) -> None:
        super().__init__(backbone, "deeplab", num_class, aux, norm_layer, head_width, c4_in_list=True)


@register_model("deeplabv3", width_key="head.aspp.b0.0.weight")
def deeplabv3(backbone: str, num_class: int = 19, aux: bool = False,
              norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
              head_width: Optional[Union[int, str]] = None) -> DeepLabV3:
    backbone = check_backbone("deeplabv3", backbone, RESNETS, "deeplab_mobile")
    return DeepLabV3(backbone, num_class, aux, norm_layer, head_width)


@register_model("deeplab_mobile", width_key="head.aspp.b0.0.weight")
def deeplab_mobile(backbone: Optional[str] = "mobilenetv2", num_class: int = 19, aux: bool = False,
                   norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                   head_width: Optional[Union[int, str]] = None) -> DeepLabV3:
    check_backbone("deeplab_mobile", backbone, ("mobilenetv2",), "deeplabv3")
    if aux:
        raise ValueError("deeplab_mobile has no aux head (as in Af-DCD/CIRKD); build it with aux=False")
    return DeepLabV3("mobilenetv2", num_class, False, norm_layer, head_width)
