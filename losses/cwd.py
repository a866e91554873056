"""CWD: Channel-wise Distillation.

Paper: Shu, Liu, Gao, Yan, Shen, "Channel-wise Knowledge Distillation for Dense Prediction",
ICCV 2021 (authors' code irfanICMLL/TorchDistiller). Official code followed:
winycg/CIRKD@2d8ad0f losses/cwd.py:CriterionCWD, train_kd.py (unchanged at dab64db).

    S <- Conv1x1_{Cs->Ct, no bias}(S)  when the channel counts differ (feature term only)
    norm 'channel': P_t[b,k,.] = softmax_i(T_in[b,k,i] / tau), Q_s likewise, i over h*w positions
        L_cwd = tau^2 * sum_{b,k,i} P_t (log P_t - log Q_s) / (n * c)   (c = student channels BEFORE the adapter)
    norm 'spatial': softmax over channels at each position, divisor n*h*w (pixel-wise KD)
    student: lambda_kd*L_kd + lambda_fea*L_cwd(head_feat) + lambda_logit*L_cwd(logits) + lambda_adv*L_G
             (1, 50, 3, 0.001; tau 4; SegFormer students 5 / 0.3; D as in skd.py, lambda_d 0.1)

Differences from the official code:
- ``divergence='mse'`` works (CIRKD's copy only set the temperature for 'kl', so 'mse' raised):
  tau^2 * sum (P_s - P_t)^2 / divisor, with tau defaulting to 1 for mse as in the authors' code.
  The broken 'none' / 'channel_mean' norms are not offered.
- log Q_s is computed with log_softmax instead of log(softmax) (same value, no underflow).
- The feature and logit terms use two criterion objects (the official code shared one whose
  adapter was only ever used for the feature pair); an adapter is created only when the channel
  counts differ and lambda_fea != 0 (the official code always created it, and weight decay
  shrank the unused one).
- Inputs are computed in float32 under AMP; the teacher is detached (as the official code did).
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch.nn.functional as F
from torch import Tensor, nn

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick
from .registry import register
from .adversarial import AdversarialMixin, add_adv_args, resolve_adv
from .common import (KDTermMixin, add_kd_args, as_float, describe_terms, feature_channels, num_classes_of,
                     require_teacher, resolve_kd)

NORM_TYPES = ("channel", "spatial")
DIVERGENCES = ("kl", "mse")


def cwd_loss(student: Tensor, teacher: Tensor, temperature: float = 4.0, norm_type: str = "channel",
             divergence: str = "kl", divisor_channels: Optional[int] = None) -> Tensor:
    """Channel-wise (or spatial) distribution distillation of two same-shaped maps (B, C, h, w).

    ``divisor_channels``: the c of n*c for the 'channel' norm (the student's channel count before an
    adapter, as in the official code); defaults to the given channel count.
    """
    if norm_type not in NORM_TYPES:
        raise ValueError("CWD: norm_type must be one of %s, got %r" % (NORM_TYPES, norm_type))
    if divergence not in DIVERGENCES:
        raise ValueError("CWD: divergence must be one of %s, got %r" % (DIVERGENCES, divergence))
    if student.shape != teacher.shape:
        raise ValueError("CWD: student map %s and teacher map %s must have the same shape (after the adapter)"
                         % (tuple(student.shape), tuple(teacher.shape)))
    student = as_float(student)
    teacher = as_float(teacher.detach()).to(student.dtype)
    n, c, h, w = student.shape
    if norm_type == "channel":
        dim, divisor = -1, n * (divisor_channels or c)
        student, teacher = student.reshape(n, c, -1), teacher.reshape(n, c, -1)
    else:
        dim, divisor = 1, n * h * w
    if divergence == "kl":
        log_q = F.log_softmax(student / temperature, dim=dim)
        log_p = F.log_softmax(teacher / temperature, dim=dim)
        loss = F.kl_div(log_q, log_p, reduction="sum", log_target=True)
    else:
        loss = (F.softmax(student / temperature, dim=dim) - F.softmax(teacher / temperature, dim=dim)).pow(2).sum()
    return loss / divisor * (temperature ** 2)


class CWDLoss(nn.Module):
    """``CWDLoss(s_channels, t_channels, norm_type, temperature, divergence)(student, teacher)``.

    The 1x1 adapter ``conv`` (Cs -> Ct, no bias) exists when ``s_channels != t_channels`` and is
    applied whenever the two inputs' channel counts differ.
    """

    def __init__(self, s_channels: int, t_channels: int, norm_type: str = "channel",
                 temperature: float = 4.0, divergence: str = "kl") -> None:
        super().__init__()
        if norm_type not in NORM_TYPES or divergence not in DIVERGENCES:
            raise ValueError("CWD: norm_type must be one of %s and divergence one of %s (got %r, %r)"
                             % (NORM_TYPES, DIVERGENCES, norm_type, divergence))
        self.norm_type = norm_type
        self.divergence = divergence
        self.temperature = float(temperature)
        self.conv = nn.Conv2d(s_channels, t_channels, 1, bias=False) if s_channels != t_channels else None

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        channels = student.shape[1]
        if channels != teacher.shape[1]:
            if self.conv is None or self.conv.in_channels != channels or self.conv.out_channels != teacher.shape[1]:
                raise ValueError("CWD: student has %d channels, teacher %d, and no matching adapter was built"
                                 % (channels, teacher.shape[1]))
            student = self.conv(as_float(student).to(self.conv.weight.dtype))
        return cwd_loss(student, teacher, self.temperature, self.norm_type, self.divergence, channels)

    def extra_repr(self) -> str:
        return "norm_type=%s, divergence=%s, temperature=%g" % (self.norm_type, self.divergence, self.temperature)


@register("cwd")
class CWD(KDTermMixin, AdversarialMixin, DistillMethod):
    """``--kd-method cwd``: KD + CWD on head_feat (1x1 adapter) + CWD on logits + adversarial term."""

    def __init__(self, num_classes: int, s_feat_channels: int, t_feat_channels: int,
                 lambda_kd: float = 1.0, kd_temperature: float = 1.0, lambda_fea: float = 50.0,
                 lambda_logit: float = 3.0, temperature: float = 4.0, norm_type: str = "channel",
                 divergence: str = "kl", lambda_adv: float = 0.001, lambda_d: float = 0.1) -> None:
        super().__init__()
        self.init_kd(lambda_kd, kd_temperature)
        self.lambda_fea = float(lambda_fea)
        self.lambda_logit = float(lambda_logit)
        self.cwd_feat = (CWDLoss(s_feat_channels, t_feat_channels, norm_type, temperature, divergence)
                         if self.lambda_fea != 0 else None)
        self.cwd_logit = (CWDLoss(num_classes, num_classes, norm_type, temperature, divergence)
                          if self.lambda_logit != 0 else None)
        self.init_adv(num_classes, lambda_adv, lambda_d)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_kd_args(parser)
        add_flag(parser, "--lambda-cwd-fea", dest="lambda_cwd_fea", type=float, default=None,
                 help="weight of CWD on head_feat through a 1x1 adapter (default 50; SegFormer students 5)")
        add_flag(parser, "--lambda-cwd-logit", dest="lambda_cwd_logit", type=float, default=None,
                 help="weight of CWD on the logits (default 3; SegFormer students 0.3)")
        add_flag(parser, "--cwd-temperature", dest="cwd_temperature", type=float, default=None,
                 help="CWD temperature tau (default 4 for kl, 1 for mse)")
        add_flag(parser, "--cwd-norm", dest="cwd_norm", choices=NORM_TYPES, default=None,
                 help="CWD normalisation: softmax over positions per channel (channel, default) or "
                      "over channels per position (spatial)")
        add_flag(parser, "--cwd-divergence", dest="cwd_divergence", choices=DIVERGENCES, default=None,
                 help="CWD divergence (default kl)")
        add_adv_args(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "CWD":
        lambda_kd, kd_temperature = resolve_kd(args)
        lambda_adv, lambda_d = resolve_adv(args)
        segformer = "segformer" in str(getattr(args, "student_model", "") or "").lower()
        divergence = pick(getattr(args, "cwd_divergence", None), "kl")
        temperature = float(pick(getattr(args, "cwd_temperature", None), 4.0 if divergence == "kl" else 1.0))
        if temperature <= 0:
            raise ValueError("--cwd-temperature must be > 0 (got %g)" % temperature)
        lambda_fea = float(pick(getattr(args, "lambda_cwd_fea", None), 5.0 if segformer else 50.0))
        s_feat = t_feat = 0
        if lambda_fea != 0:
            s_feat = feature_channels(student_info, "student", "cwd")
            t_feat = feature_channels(teacher_info, "teacher", "cwd")
        return cls(num_classes_of(args, student_info), s_feat, t_feat, lambda_kd, kd_temperature, lambda_fea,
                   float(pick(getattr(args, "lambda_cwd_logit", None), 0.3 if segformer else 3.0)),
                   temperature, pick(getattr(args, "cwd_norm", None), "channel"), divergence, lambda_adv, lambda_d)

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        terms = self.kd_terms(ctx)
        if self.cwd_feat is not None:
            terms["cwd_fea"] = self.lambda_fea * self.cwd_feat(ctx.student.head_feat, ctx.teacher.head_feat)
        if self.cwd_logit is not None:
            terms["cwd_logit"] = self.lambda_logit * self.cwd_logit(ctx.student.logits, ctx.teacher.logits)
        terms.update(self.adv_terms(ctx))
        return terms

    def describe(self) -> str:
        h = self.holistic
        crit = self.cwd_feat or self.cwd_logit
        extra = " [%s]" % crit.extra_repr() if crit is not None else ""
        return describe_terms("cwd", {"kd": self.lambda_kd, "cwd_fea": self.lambda_fea, "cwd_logit": self.lambda_logit,
                                      "adv_G": h.lambda_adv if h else 0, "adv_D": h.lambda_d if h else 0}) + extra
