"""The mmseg family as SegKD models: backbone + decode head (+ FCN aux head), mmseg's key names.

Registered (``get_segmentation_model(name, backbone, ...)``):
    pspnet   backbone resnet18_v1c | resnet101_v1c; head_width = decode channels (default 512 for
             R101, 128 for R18 as BPKD's student), aux_width = aux channels (default in/4)
    isanet   same backbones and widths; isa_channels 256 (BPKD's R18 student keeps mmseg's 256)
    deeplabv3plus  backbone mobilenetv2 | resnet18_v1c | resnet101_v1c; head_width 512 (zoo; BPKD's
             Cityscapes MobileNetV2 student uses 128 with aux_width 64), c1 -> 48, logits at stride 4
    fcn      backbone hrnetv2_w18_small | hrnetv2_w18 | hrnetv2_w48: the 4 branches resized to the
             first and concatenated (270 / 720 channels), 1x1 ConvModule, no dropout, no aux head

Forward -> SegOutputs ``[logits, aux_logits (aux), c1, c2, c3, c4, seg_logits, head_feat]``:
``logits`` at the head's native stride (what BPKD distils), ``seg_logits`` = logits resized to the
input (bilinear, align_corners False, mmseg's ``encode_decode``), ``head_feat`` = the decode head's
feature before Dropout2d + ``conv_seg``. Metadata: RGB ImageNet mean/std input, align_corners
False, heads ``decode_head.`` / ``auxiliary_head.``, mmrazor's ``architecture.model.`` prefix
stripped when loading. Checkpoints ``{meta, state_dict}`` load strictly.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

from torch import Tensor, nn

from ..meta import IMAGENET_RGB, ModelMeta
from ..outputs import SegOutputs
from ..registry import register_model
from .common import FCNHead, resize
from .heads import ResizeConcatFCNHead
from .heads import DepthwiseSeparableASPPHead, ISAHead, PSPHead
from .hrnet import ARCHS as HRNET_ARCHS, HRNet
from .mobilenet_v2 import MobileNetV2
from .resnet_v1c import ResNetV1c

MMSEG_META = ModelMeta(input_norm=IMAGENET_RGB, align_corners=False,
                       head_prefixes=("decode_head.", "auxiliary_head."),
                       classifier_keys=("decode_head.conv_seg.*", "auxiliary_head.conv_seg.*"),
                       key_prefix_rules=(("architecture.model.", ""),))
BACKBONES: Dict[str, Callable[..., nn.Module]] = {
    "resnet18_v1c": lambda norm_layer: ResNetV1c(18, norm_layer),
    "resnet50_v1c": lambda norm_layer: ResNetV1c(50, norm_layer),
    "resnet101_v1c": lambda norm_layer: ResNetV1c(101, norm_layer),
    "mobilenetv2": lambda norm_layer: MobileNetV2(norm_layer),
}
BACKBONES.update({name: (lambda norm_layer, name=name: HRNet(name, norm_layer)) for name in HRNET_ARCHS})


def build_mmseg_backbone(name: Optional[str], norm_layer) -> nn.Module:
    if name not in BACKBONES:
        raise ValueError("mmseg-family backbone must be one of %s, got %r" % (" | ".join(BACKBONES), name))
    return BACKBONES[name](norm_layer)


class MMSegModel(nn.Module):
    """EncoderDecoder: ``backbone``, ``decode_head``, ``auxiliary_head`` (registered in that order)."""

    meta = MMSEG_META

    def __init__(self, backbone: nn.Module, decode_head: nn.Module, auxiliary_head: Optional[nn.Module],
                 num_class: int, aux_in_index: int = 2) -> None:
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        if auxiliary_head is not None:
            self.auxiliary_head = auxiliary_head
        self.aux = auxiliary_head is not None
        self.aux_in_index = aux_in_index
        self.num_class = num_class
        c1, c2, c3, c4 = backbone.stage_channels
        self.head_width = decode_head.channels
        self.out_channels: Dict[str, int] = {"logits": num_class, "c1": c1, "c2": c2, "c3": c3, "c4": c4,
                                             "seg_logits": num_class, "head_feat": decode_head.channels}
        if self.aux:
            self.out_channels["aux_logits"] = num_class
        self.output_names = tuple(["logits"] + (["aux_logits"] if self.aux else [])
                                  + ["c1", "c2", "c3", "c4", "seg_logits", "head_feat"])

    def predict(self, scores: Tensor) -> Tensor:
        return scores.argmax(1)

    def forward(self, x: Tensor) -> SegOutputs:
        stages = self.backbone(x)
        logits, head_feat = self.decode_head(stages)
        values = {"logits": logits, "head_feat": head_feat,
                  "seg_logits": resize(logits, x.shape[2:], self.meta.align_corners)}
        values.update(zip(("c1", "c2", "c3", "c4"), stages))
        if self.aux:
            values["aux_logits"] = self.auxiliary_head(stages[self.aux_in_index])[0]
        return SegOutputs([values[n] for n in self.output_names], self.output_names)


def _default_width(backbone: nn.Module, small: int, large: int) -> int:
    return large if backbone.stage_channels[3] >= 2048 else small


AUX_WIDTH_KEY = "auxiliary_head.convs.0.conv.weight"


def _aux_head(backbone: nn.Module, num_class: int, aux_width: Optional[int], norm_layer) -> FCNHead:
    in_channels = backbone.stage_channels[2]
    return FCNHead(in_channels, int(aux_width or in_channels // 4), num_class, norm_layer=norm_layer)


@register_model("pspnet", width_key="decode_head.bottleneck.conv.weight", meta=MMSEG_META, aux_width_key=AUX_WIDTH_KEY)
def pspnet(backbone: str, num_class: int = 19, aux: bool = True, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
           head_width: Optional[int] = None, aux_width: Optional[int] = None) -> MMSegModel:
    net = build_mmseg_backbone(backbone, norm_layer)
    width = int(head_width or _default_width(net, 128, 512))
    head = PSPHead(net.stage_channels[3], width, num_class, norm_layer=norm_layer)
    return MMSegModel(net, head, _aux_head(net, num_class, aux_width, norm_layer) if aux else None, num_class)


@register_model("isanet", width_key="decode_head.in_conv.conv.weight", meta=MMSEG_META, aux_width_key=AUX_WIDTH_KEY)
def isanet(backbone: str, num_class: int = 19, aux: bool = True, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
           head_width: Optional[int] = None, aux_width: Optional[int] = None, isa_channels: int = 256) -> MMSegModel:
    net = build_mmseg_backbone(backbone, norm_layer)
    width = int(head_width or _default_width(net, 128, 512))
    head = ISAHead(net.stage_channels[3], width, num_class, isa_channels=isa_channels, norm_layer=norm_layer)
    return MMSegModel(net, head, _aux_head(net, num_class, aux_width, norm_layer) if aux else None, num_class)


@register_model("deeplabv3plus", width_key="decode_head.bottleneck.conv.weight", meta=MMSEG_META,
                aux_width_key=AUX_WIDTH_KEY)
def deeplabv3plus(backbone: str, num_class: int = 19, aux: bool = True,
                  norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d, head_width: Optional[int] = None,
                  aux_width: Optional[int] = None, c1_channels: int = 48) -> MMSegModel:
    net = build_mmseg_backbone(backbone, norm_layer)
    width = int(head_width or 512)
    head = DepthwiseSeparableASPPHead(net.stage_channels[3], width, num_class, c1_in_channels=net.stage_channels[0],
                                      c1_channels=c1_channels, norm_layer=norm_layer)
    aux_default = 256 if backbone == "mobilenetv2" else None   # mmseg's zoo: 96 -> 256 on MobileNetV2
    auxiliary = _aux_head(net, num_class, aux_width or aux_default, norm_layer) if aux else None
    return MMSegModel(net, head, auxiliary, num_class)


@register_model("fcn", width_key="decode_head.convs.0.conv.weight", meta=MMSEG_META, has_aux=False)
def fcn(backbone: str, num_class: int = 19, aux: bool = False, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        head_width: Optional[int] = None) -> MMSegModel:
    if not str(backbone).startswith("hrnetv2"):
        raise ValueError("fcn (mmseg family) is the HRNetV2 segmentor: backbone %s, got %r"
                         % (" | ".join(sorted(HRNET_ARCHS)), backbone))
    if aux:
        raise ValueError("fcn/%s has no aux head (as mmseg's fcn_hr configs); build it with aux=False" % backbone)
    net = build_mmseg_backbone(backbone, norm_layer)
    width = int(head_width or sum(net.stage_channels))
    head = ResizeConcatFCNHead(net.stage_channels, width, num_class, norm_layer=norm_layer)
    return MMSegModel(net, head, None, num_class)
