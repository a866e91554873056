"""One spec per network (student, teacher, teacher2, ...), made once from the flags, and the build.

A :class:`NetSpec` says everything needed to build one network: model, backbone, classes,
checkpoint (and ImageNet file), head width, aux head. What the network expects as input and how
its logits are resized travel with the built model (``model.meta``, models/meta.py); the spec
records them after the build so the log names them. Every teacher has its own flags:
``--teacher2-*`` never borrows the first teacher's width or aux head.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import nn

from losses import MethodSpec, MissingKeys
from models import CheckpointError, get_segmentation_model, model_has_aux
from models.meta import PIPELINE_NORM, model_meta, pipeline_norm, set_input_source


class BuildError(RuntimeError):
    """A flag or file that makes the run impossible; the message says what to do."""


def path_or_none(value: Optional[str]) -> Optional[str]:
    return None if value in (None, "", "None", "none") else value


@dataclass
class NetSpec:
    role: str                         # "student", "teacher", "teacher2"
    model: str
    backbone: str
    num_classes: int
    checkpoint: Optional[str] = None
    pretrained_base: Optional[str] = None
    head_width: Optional[str] = None
    aux: Optional[bool] = False       # None: as the checkpoint has it
    input_norm: str = ""              # filled from the built model's metadata
    align_corners: Optional[bool] = None
    aux_width: Optional[int] = None   # mmseg family: aux head channels (None: default / the checkpoint's)
    classes: Optional[List[int]] = None   # incremental models: head widths per step (DKD)

    def describe(self) -> str:
        return "%s %s/%s (%d classes, aux %s, head %s, input %s, align_corners %s, weights %s)" % (
            self.role, self.model, self.backbone, self.num_classes, "on" if self.aux else "off",
            self.head_width or "default", self.input_norm or "?", self.align_corners,
            self.checkpoint or self.pretrained_base or "random")


def _teacher_aux(flag: Optional[bool], backbone: str, checkpoint: Optional[str], model: str = "") -> Optional[bool]:
    """Unset: as the checkpoint has it (released CIRKD and mmseg teachers keep their aux head, so they
    load strictly); a random teacher gets one on ResNets, as CIRKD's, if its model has one at all."""
    if flag is not None:
        return bool(flag)
    if checkpoint is not None:
        return None
    return backbone.startswith("resnet") and model_has_aux(model)


def student_spec(args: argparse.Namespace) -> NetSpec:
    return NetSpec("student", args.student_model, args.student_backbone, args.num_classes,
                   path_or_none(args.student_pretrained), path_or_none(args.student_pretrained_base),
                   args.student_head_width, bool(args.aux), aux_width=getattr(args, "student_aux_width", None),
                   classes=getattr(args, "head_widths", None))


def teacher_specs(args: argparse.Namespace, count: int) -> List[NetSpec]:
    checkpoint = path_or_none(args.teacher_pretrained)
    first = NetSpec("teacher", args.teacher_model, args.teacher_backbone, args.num_classes, checkpoint, None,
                    args.teacher_head_width, _teacher_aux(args.teacher_aux, args.teacher_backbone, checkpoint,
                                                          args.teacher_model),
                    aux_width=getattr(args, "teacher_aux_width", None))
    backbone2 = args.teacher2_backbone or args.teacher_backbone
    checkpoint2 = path_or_none(args.teacher2_pretrained)
    model2 = args.teacher2_model or args.teacher_model
    second = NetSpec("teacher2", model2, backbone2, args.num_classes,
                     checkpoint2, None, args.teacher2_head_width, _teacher_aux(args.teacher2_aux, backbone2, checkpoint2,
                                                                                model2))
    widths = getattr(args, "head_widths", None)
    if widths:        # the previous step's model: one head less
        first.classes, first.num_classes = list(widths[:-1]), 1 + sum(widths[:-1])
    return [first, second][:count]


def build_network(model: str, backbone: str, num_classes: int, aux: Optional[bool], pretrained: Optional[str],
                  pretrained_base: Optional[str] = None, head_width=None, role: str = "student",
                  missing: Optional[MissingKeys] = None, aux_width: Optional[int] = None,
                  classes: Optional[List[int]] = None) -> nn.Module:
    pretrained = path_or_none(pretrained)
    pretrained_base = path_or_none(pretrained_base)
    for flag, path in (("pretrained", pretrained), ("pretrained-base", pretrained_base)):
        if path is not None and not os.path.isfile(path):
            raise BuildError("--%s-%s %s does not exist; download it into pretrained_ckpt/ (see README) "
                             "or pass None" % (role, flag, path))
    if head_width is not None and str(head_width).isdigit():
        head_width = int(head_width)
    try:
        return get_segmentation_model(model, backbone, num_class=num_classes, aux=aux,
                                      norm_layer=nn.BatchNorm2d, pretrained_base=pretrained_base,
                                      pretrained=pretrained, head_width=head_width,
                                      allow_missing=missing.patterns if missing else (),
                                      init_missing=missing.init if missing else None,
                                      **({"aux_width": int(aux_width)} if aux_width else {}),
                                      **({"classes": list(classes)} if classes else {}))
    except CheckpointError as exc:
        raise BuildError("%s: %s" % (role, str(exc).splitlines()[0])) from exc
    except (KeyError, ValueError) as exc:
        raise BuildError("--%s-model %s / --%s-backbone %s: %s" % (role, model, role, backbone, exc)) from exc


def input_norm_of_args(args: argparse.Namespace):
    """The normalisation of the tensors ``--pipeline`` produces."""
    if getattr(args, "pipeline", "cirkd") == "cirkd":
        return PIPELINE_NORM
    from datasets import pipeline_of
    return pipeline_norm(pipeline_of(args))


def build_from_spec(spec: NetSpec, method_spec: Optional[MethodSpec], args: argparse.Namespace) -> nn.Module:
    """Build one network; it then accepts the pipeline's tensor and adapts it to its own input."""
    missing = method_spec.missing_keys_allowed(args, spec.role) if method_spec is not None else None
    net = build_network(spec.model, spec.backbone, spec.num_classes, spec.aux, spec.checkpoint,
                        spec.pretrained_base, spec.head_width, role=spec.role, missing=missing,
                        aux_width=spec.aux_width, classes=spec.classes)
    set_input_source(net, input_norm_of_args(args))
    meta = model_meta(net)
    spec.input_norm, spec.align_corners = meta.input_norm.name, meta.align_corners
    spec.aux = bool(getattr(net, "aux", spec.aux))
    return net


def build_teachers(args: argparse.Namespace, specs: List[NetSpec], method_spec: Optional[MethodSpec],
                   device: torch.device) -> List[nn.Module]:
    teachers = []
    for spec in specs:
        if spec.checkpoint is None and not args.allow_random_teacher:
            raise BuildError("--kd-method %s needs a trained teacher: pass --%s-pretrained FILE (e.g. "
                             "pretrained_ckpt/deeplabv3_resnet101_citys_best_model.pth), or "
                             "--allow-random-teacher for a smoke test" % (args.kd_method, spec.role))
        net = build_from_spec(spec, method_spec, args)
        net.to(device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        teachers.append(net)
    return teachers
