"""FitNet: feature hint regression (as a segmentation baseline).

Paper: Romero, Ballas, Kahou, Chassang, Gatta, Bengio, "FitNets: Hints for Thin Deep Nets",
ICLR 2015. Official code followed: winycg/CIRKD@2d8ad0f losses/fitnet.py:CriterionFitNet,
train_kd.py (unchanged at dab64db).

    R(S)   = Conv1x1_{Cs->Ct, no bias}(S)        (always applied, even when Cs == Ct)
    L_fit  = mean over B*Ct*h*w of (R(S) - T)^2                  on head_feat
    student: lambda_kd*L_kd + lambda_fitnet*L_fit              (1, 10; no adversarial term)

The regressor is trained jointly with the student by the student's SGD (same lr schedule and
weight decay) and dropped after training.

Differences from the official code: the regressor is created only when lambda_fitnet != 0 (the
official train_kd.py always created it and put it in the SGD); the teacher feature is detached
and the loss is computed in float32 under AMP; shape mismatches raise a clear error.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch.nn.functional as F
from torch import Tensor, nn

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick
from .registry import register
from .common import KDTermMixin, add_kd_args, as_float, describe_terms, feature_channels, require_teacher, resolve_kd


class FitNetLoss(nn.Module):
    """``FitNetLoss(s_channels, t_channels)(student_feat, teacher_feat)``; regressor at ``conv``."""

    def __init__(self, s_channels: int, t_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(s_channels, t_channels, kernel_size=1, bias=False)

    def forward(self, student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
        if student_feat.shape[1] != self.conv.in_channels or teacher_feat.shape[1] != self.conv.out_channels:
            raise ValueError("FitNet: regressor maps %d -> %d channels but got student %s, teacher %s"
                             % (self.conv.in_channels, self.conv.out_channels,
                                tuple(student_feat.shape), tuple(teacher_feat.shape)))
        if student_feat.shape[0] != teacher_feat.shape[0] or student_feat.shape[2:] != teacher_feat.shape[2:]:
            raise ValueError("FitNet: student feature %s and teacher feature %s need the same batch and spatial size"
                             % (tuple(student_feat.shape), tuple(teacher_feat.shape)))
        regressed = self.conv(as_float(student_feat).to(self.conv.weight.dtype))
        return F.mse_loss(regressed, as_float(teacher_feat.detach()).to(regressed.dtype))


@register("fitnet")
class FitNet(KDTermMixin, DistillMethod):
    """``--kd-method fitnet``: KD + FitNet hint regression on head_feat."""

    def __init__(self, s_feat_channels: int, t_feat_channels: int, lambda_kd: float = 1.0,
                 temperature: float = 1.0, lambda_fitnet: float = 10.0) -> None:
        super().__init__()
        self.init_kd(lambda_kd, temperature)
        self.lambda_fitnet = float(lambda_fitnet)
        self.fitnet = FitNetLoss(s_feat_channels, t_feat_channels) if self.lambda_fitnet != 0 else None

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_kd_args(parser)
        add_flag(parser, "--lambda-fitnet", dest="lambda_fitnet", type=float, default=None,
                 help="weight of FitNet hint regression on head_feat through a 1x1 regressor (default 10)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "FitNet":
        lambda_kd, temperature = resolve_kd(args)
        lambda_fitnet = float(pick(getattr(args, "lambda_fitnet", None), 10.0))
        s_feat = t_feat = 0
        if lambda_fitnet != 0:
            s_feat = feature_channels(student_info, "student", "fitnet")
            t_feat = feature_channels(teacher_info, "teacher", "fitnet")
        return cls(s_feat, t_feat, lambda_kd, temperature, lambda_fitnet)

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        terms = self.kd_terms(ctx)
        if self.fitnet is not None:
            terms["fitnet"] = self.lambda_fitnet * self.fitnet(ctx.student.head_feat, ctx.teacher.head_feat)
        return terms

    def describe(self) -> str:
        return describe_terms("fitnet", {"kd": self.lambda_kd, "fitnet": self.lambda_fitnet})
