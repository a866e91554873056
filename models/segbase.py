"""The shared body of the zoo's segmentation models: backbone -> head (+ FCN aux head on c3).

Public API:
    SegModel(backbone, head_kind, num_class=19, aux=False, norm_layer=nn.BatchNorm2d,
             head_width=None, c4_in_list=True)
        forward(x) -> SegOutputs  [logits, (aux_logits), (c4), head_feat], extras c1..c4
        predict(scores) -> labels  the prediction rule (argmax); .meta (models/meta.py)
        .out_channels   output name -> channels (every name the forward makes, extras included)
        .head_width     the width the head was built with
        .num_class, .aux, .backbone_name, .head_kind ("deeplab" or "psp")

Sub-modules are registered in the official order (``pretrained``, ``head``, ``auxlayer``) so
the state_dict keys and their order equal Af-DCD's. The forward list is the same in train and
eval mode (no ``self.training`` branch, as official); nothing is upsampled (logits at 1/8).
In train mode, BatchNorm on the 1x1 pooled maps (ASPP image branch, PSP bin 1) needs at least
two images per BatchNorm, exactly like the official code.
"""
from typing import Callable, Dict, Optional, Union

from torch import Tensor, nn

from .backbones import build_backbone
from .heads import HEADS, FCNHead, resolve_head_width
from .meta import DEFAULT_META, ModelMeta
from .outputs import SegOutputs


class SegModel(nn.Module):
    def __init__(self, backbone: str, head_kind: str, num_class: int = 19, aux: bool = False,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 head_width: Optional[Union[int, str]] = None, c4_in_list: bool = True) -> None:
        super().__init__()
        if head_kind not in HEADS:
            raise ValueError("unknown head kind %r; use one of %s" % (head_kind, sorted(HEADS)))
        self.backbone_name = backbone
        self.head_kind = head_kind
        self.num_class = num_class
        self.aux = bool(aux)
        self.c4_in_list = c4_in_list
        self.pretrained = build_backbone(backbone, norm_layer)
        c1, c2, c3, c4 = self.pretrained.stage_channels
        self.head_width = resolve_head_width(head_kind, c4, head_width)
        self.head = HEADS[head_kind](c4, num_class, self.head_width, norm_layer)
        if self.aux:
            self.auxlayer = FCNHead(c3, num_class, norm_layer)
        self.out_channels: Dict[str, int] = {"logits": num_class, "c1": c1, "c2": c2, "c3": c3,
                                             "c4": c4, "head_feat": self.head_width}
        if self.aux:
            self.out_channels["aux_logits"] = num_class
        self.output_names = tuple(["logits"] + (["aux_logits"] if self.aux else [])
                                  + (["c4"] if c4_in_list else []) + ["head_feat"])

    meta: ModelMeta = DEFAULT_META   # the registry sets the registered model's metadata

    def predict(self, scores: Tensor) -> Tensor:
        """Class scores (N, K, H, W) -> label map (N, H, W): softmax/argmax rule."""
        return scores.argmax(1)

    def forward(self, x: Tensor) -> SegOutputs:
        c1, c2, c3, c4 = self.pretrained(x)
        stages = {"c1": c1, "c2": c2, "c3": c3, "c4": c4}
        logits, head_feat = self.head(*[stages[name] for name in self.head.stages])
        values = {"logits": logits, "c4": c4, "head_feat": head_feat}
        if self.aux:
            values["aux_logits"] = self.auxlayer(c3)
        return SegOutputs([values[n] for n in self.output_names], self.output_names, stages)
