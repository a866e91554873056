"""PSPNet of the Af-DCD / CIRKD zoo: ``psp`` (ResNet) and ``psp_mobile`` (MobileNetV2).

Public API (registered builders, normally reached through ``get_segmentation_model``):
    psp(backbone, num_class=19, aux=False, norm_layer=nn.BatchNorm2d, head_width=None)
        backbone resnet18 | resnet50 | resnet101; forward -> [logits, aux_logits, c4, head_feat]
        (aux=True) or [logits, c4, head_feat] (aux=False)
    psp_mobile(backbone="mobilenetv2", num_class=19, aux=False, norm_layer=..., head_width=None)
        forward -> [logits, head_feat] (c4 NOT in the list, as official; by name only)
Both attach c1..c4 by name. Reference: OSVAI/Af-DCD@5b086a7 models/pspnet.py,
models/psp_mobile.py. Pyramid bins 1/2/3/6, each 1x1 conv to in/4 channels; concat
[x, bins] -> 3x3 conv to the head width: 128 (512/320-ch input) or 512 (2048-ch) by default,
256 on 2048 channels with head_width="cirkd_v2".
"""
from typing import Callable, Optional, Union

from torch import nn

from .deeplabv3 import RESNETS, check_backbone
from .registry import register_model
from .segbase import SegModel


class PSPNet(SegModel):
    def __init__(self, backbone: str, num_class: int = 19, aux: bool = False,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 head_width: Optional[Union[int, str]] = None, c4_in_list: bool = True) -> None:
        super().__init__(backbone, "psp", num_class, aux, norm_layer, head_width, c4_in_list)


@register_model("psp", width_key="head.block.0.weight")
def psp(backbone: str, num_class: int = 19, aux: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        head_width: Optional[Union[int, str]] = None) -> PSPNet:
    backbone = check_backbone("psp", backbone, RESNETS, "psp_mobile")
    return PSPNet(backbone, num_class, aux, norm_layer, head_width)


@register_model("psp_mobile", width_key="head.block.0.weight")
def psp_mobile(backbone: Optional[str] = "mobilenetv2", num_class: int = 19, aux: bool = False,
               norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
               head_width: Optional[Union[int, str]] = None) -> PSPNet:
    check_backbone("psp_mobile", backbone, ("mobilenetv2",), "psp")
    if aux:
        raise ValueError("psp_mobile has no aux head (as in Af-DCD/CIRKD); build it with aux=False")
    return PSPNet("mobilenetv2", num_class, False, norm_layer, head_width, c4_in_list=False)
