"""Pieces several methods share, so no method file imports another method's file.

- ``align_to``: a teacher map resized to the student's output stride when they differ;
- the pixel-wise KD term (``kd_loss``, ``KDLoss``, ``KDTermMixin``) and its shared flags
  ``--lambda-kd`` / ``--kd-temperature`` (CIRKD's CriterionKD; see ``losses/kd.py`` for the math);
- small lookups: ``num_classes_of``, ``feature_channels``, ``describe_terms``;
- backbone-stage helpers of the teacher-free methods: ``parse_stages``, ``student_stage_features``.
The adversarial (SAGAN) term lives in ``losses/adversarial.py``.
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ChannelInfo, StepContext, add_flag, pick

STAGE_NAMES = ("c1", "c2", "c3", "c4")


def as_float(x: Tensor) -> Tensor:
    """Half/bfloat16 -> float32 (float32/float64 unchanged), so losses are AMP-safe."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def align_to(teacher_map: Tensor, student_map: Tensor) -> Tensor:
    """Teacher map resized to the student's spatial size when the output strides differ (e.g. an
    HRNet student at 1/4 and a PSPNet teacher at 1/8): bilinear, align_corners False, as mmseg and
    BPKD resize logits. Same size: returned unchanged (no CIRKD-family pair ever differs)."""
    if teacher_map.dim() != 4 or teacher_map.shape[-2:] == student_map.shape[-2:]:
        return teacher_map
    return F.interpolate(teacher_map, size=tuple(student_map.shape[-2:]), mode="bilinear", align_corners=False)


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """CIRKD's pixel-wise KD: KL(p_t || q_s) summed over classes, mean over B*h*w pixels, times T^2."""
    if student_logits.shape[:2] != teacher_logits.shape[:2]:
        raise ValueError("kd_loss: student logits %s and teacher logits %s must have the same batch and "
                         "number of classes" % (tuple(student_logits.shape), tuple(teacher_logits.shape)))
    teacher_logits = align_to(teacher_logits, student_logits)
    student_logits = as_float(student_logits)
    teacher_logits = as_float(teacher_logits.detach()).to(student_logits.dtype)
    num_classes = student_logits.shape[1]
    # (B, C, h, w) -> (B*h*w, C): class axis last, pixels ordered b, y, x.
    s = student_logits.permute(0, 2, 3, 1).reshape(-1, num_classes) if student_logits.dim() == 4 \
        else student_logits.reshape(-1, num_classes)
    t = teacher_logits.permute(0, 2, 3, 1).reshape(-1, num_classes) if teacher_logits.dim() == 4 \
        else teacher_logits.reshape(-1, num_classes)
    log_q = F.log_softmax(s / temperature, dim=1)
    log_p = F.log_softmax(t / temperature, dim=1)
    kl = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    return kl * (temperature ** 2)


class KDLoss(nn.Module):
    """``KDLoss(temperature)(student_logits, teacher_logits) -> 0-d tensor`` (see ``kd_loss``)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        return kd_loss(student_logits, teacher_logits, self.temperature)

    def extra_repr(self) -> str:
        return "temperature=%g" % self.temperature


def add_kd_args(parser: argparse.ArgumentParser) -> None:
    """The shared --lambda-kd / --kd-temperature flags (registered once, default None)."""
    add_flag(parser, "--lambda-kd", dest="lambda_kd", type=float, default=None,
             help="weight of the pixel-wise KD term (default 1.0 for kd/skd/ifvd/cwd/at/fitnet)")
    add_flag(parser, "--kd-temperature", dest="kd_temperature", type=float, default=None,
             help="temperature T of the pixel-wise KD term (default 1.0)")


def resolve_kd(args: argparse.Namespace, default_weight: float = 1.0,
               default_temperature: float = 1.0) -> Tuple[float, float]:
    """(lambda_kd, T) from the CLI, falling back to the CIRKD defaults."""
    weight = float(pick(getattr(args, "lambda_kd", None), default_weight))
    temperature = float(pick(getattr(args, "kd_temperature", None), default_temperature))
    if temperature <= 0:
        raise ValueError("--kd-temperature must be > 0 (got %g)" % temperature)
    if weight < 0:
        raise ValueError("--lambda-kd must be >= 0 (got %g)" % weight)
    return weight, temperature


def require_teacher(ctx: StepContext, method: str) -> None:
    if ctx.teacher is None:
        raise ValueError("--kd-method %s needs a teacher (give --teacher-model/--teacher-pretrained)" % method)


class KDTermMixin:
    """Adds the weighted pixel-wise KD term to a method (``self.lambda_kd``, ``self.kd``)."""

    lambda_kd: float
    kd: Optional[KDLoss]

    def init_kd(self, lambda_kd: float, temperature: float) -> None:
        self.lambda_kd = float(lambda_kd)
        self.kd = KDLoss(temperature) if self.lambda_kd != 0 else None

    def kd_terms(self, ctx: StepContext) -> Dict[str, Tensor]:
        if self.kd is None:
            return {}
        return {"kd": self.lambda_kd * self.kd(ctx.student.logits, ctx.teacher.logits)}


def num_classes_of(args: argparse.Namespace, student_info: Optional[ChannelInfo]) -> int:
    if student_info and "logits" in student_info:
        return int(student_info["logits"])
    if getattr(args, "num_classes", None):
        return int(args.num_classes)
    raise ValueError("cannot tell the number of classes: give args.num_classes or student_info['logits']")


def feature_channels(info: Optional[ChannelInfo], who: str, method: str) -> int:
    if not info or "head_feat" not in info:
        raise ValueError("--kd-method %s needs the %s's 'head_feat' channel count (model outputs: %s)"
                         % (method, who, sorted(info or {})))
    return int(info["head_feat"])


def describe_terms(name: str, weights: Dict[str, float]) -> str:
    return "%s(%s)" % (name, ", ".join("%s=%g" % kv for kv in weights.items() if kv[1] != 0) or "no terms")


def parse_stages(text: str, flag: str) -> List[str]:
    stages = [s.strip() for s in str(text).split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGE_NAMES]
    if bad or len(stages) < 2:
        raise ValueError("%s must list at least two of %s separated by commas, got %r" % (flag, STAGE_NAMES, text))
    return stages


def student_stage_features(ctx: StepContext, stages: Sequence[str], method: str) -> List[Tensor]:
    missing = [s for s in stages if not ctx.student.has(s)]
    if missing:
        raise KeyError("%s needs the student's backbone stages %s, but the model output lacks %s; "
                       "use a model that exposes c1..c4 by name" % (method, list(stages), missing))
    return [getattr(ctx.student, s) for s in stages]
