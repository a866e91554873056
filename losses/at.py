"""AT: Attention Transfer (as a segmentation baseline).

Paper: Zagoruyko, Komodakis, "Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer", ICLR 2017 (szagoruyko/attention-transfer).
Official code followed: winycg/CIRKD@2d8ad0f losses/at.py:CriterionAT, train_kd.py
(unchanged at dab64db).

    a(F)[b, i] = (1/C) sum_c F[b,c,i]^p            (p = 2, i over the h*w positions)
    a^(F)[b]   = a(F)[b] / max(||a(F)[b]||_2, 1e-12)
    L_at       = mean over B*h*w of (a^(S) - a^(T))^2          on head_feat (channel counts may differ)
    student:     lambda_kd*L_kd + lambda_at*L_at               (1, 10000; no adversarial term)

Differences from the official code: the teacher feature is detached and the loss is computed
in float32 under AMP; mismatched spatial sizes raise a clear error. Only the final decoder
feature is distilled (CIRKD's protocol, not the paper's several stages).
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch.nn.functional as F
from torch import Tensor, nn

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick
from .registry import register
from .common import KDTermMixin, add_kd_args, as_float, describe_terms, require_teacher, resolve_kd


def attention_map(feat: Tensor, p: int = 2) -> Tensor:
    """(B, C, h, w) -> (B, h*w): L2-normalised channel mean of |F|^p."""
    return F.normalize(feat.pow(p).mean(1).view(feat.shape[0], -1))


def at_loss(student_feat: Tensor, teacher_feat: Tensor, p: int = 2) -> Tensor:
    if student_feat.shape[0] != teacher_feat.shape[0] or student_feat.shape[2:] != teacher_feat.shape[2:]:
        raise ValueError("AT: student feature %s and teacher feature %s need the same batch and spatial size"
                         % (tuple(student_feat.shape), tuple(teacher_feat.shape)))
    student_feat = as_float(student_feat)
    teacher_feat = as_float(teacher_feat.detach()).to(student_feat.dtype)
    return (attention_map(student_feat, p) - attention_map(teacher_feat, p)).pow(2).mean()


class ATLoss(nn.Module):
    """``ATLoss(p=2)(student_feat, teacher_feat) -> 0-d tensor``."""

    def __init__(self, p: int = 2) -> None:
        super().__init__()
        self.p = p

    def forward(self, student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
        return at_loss(student_feat, teacher_feat, self.p)


@register("at")
class AT(KDTermMixin, DistillMethod):
    """``--kd-method at``: KD + attention transfer on head_feat."""

    def __init__(self, lambda_kd: float = 1.0, temperature: float = 1.0, lambda_at: float = 10000.0) -> None:
        super().__init__()
        self.init_kd(lambda_kd, temperature)
        self.lambda_at = float(lambda_at)
        self.at = ATLoss() if self.lambda_at != 0 else None

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_kd_args(parser)
        add_flag(parser, "--lambda-at", dest="lambda_at", type=float, default=None,
                 help="weight of attention transfer on head_feat (default 10000)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "AT":
        lambda_kd, temperature = resolve_kd(args)
        return cls(lambda_kd, temperature, float(pick(getattr(args, "lambda_at", None), 10000.0)))

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        terms = self.kd_terms(ctx)
        if self.at is not None:
            terms["at"] = self.lambda_at * self.at(ctx.student.head_feat, ctx.teacher.head_feat)
        return terms

    def describe(self) -> str:
        return describe_terms("at", {"kd": self.lambda_kd, "at": self.lambda_at})
