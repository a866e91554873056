"""Backbones by name.

Public API:
    BACKBONES                         name -> constructor(norm_layer) -> nn.Module
    register_backbone(name)           decorator adding a constructor (new families register theirs)
    build_backbone(name, norm_layer)  a backbone whose forward(x) returns (c1, c2, c3, c4) and
                                      whose ``stage_channels`` gives their channel counts

A backbone that loads ImageNet weights from a file whose keys differ from its own
state_dict by a sub-module prefix exposes that sub-module as ``imagenet_root`` (MobileNetV2:
``net``); otherwise the backbone itself is the root.
"""
from typing import Callable, Dict

from torch import nn

from .mobilenetv2 import MobileNetV2Dilated
from .resnet import ResNetV1s, resnet18_v1s, resnet50_v1s, resnet101_v1s

BACKBONES: Dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18_v1s,
    "resnet50": resnet50_v1s,
    "resnet101": resnet101_v1s,
    "mobilenetv2": MobileNetV2Dilated,
}


def register_backbone(name: str) -> Callable:
    """Decorator: ``@register_backbone("hrnet_w18s") def build(norm_layer): ...``."""
    def wrap(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in BACKBONES and BACKBONES[name] is not constructor:
            raise ValueError("backbone %r registered twice" % name)
        BACKBONES[name] = constructor
        return constructor
    return wrap


def build_backbone(name: str, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d) -> nn.Module:
    if name not in BACKBONES:
        raise ValueError("unknown backbone %r; available: %s" % (name, ", ".join(BACKBONES)))
    return BACKBONES[name](norm_layer=norm_layer)


__all__ = ["BACKBONES", "build_backbone", "register_backbone", "MobileNetV2Dilated", "ResNetV1s",
           "resnet18_v1s", "resnet50_v1s", "resnet101_v1s"]
