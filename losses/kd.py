"""KD: pixel-wise logit distillation with a temperature.

Paper: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network" (arXiv 1503.02531),
applied per pixel as the "pixel-wise" term of SKD (Liu et al., CVPR 2019).
Official code followed: winycg/CIRKD@2d8ad0f losses/kd.py:CriterionKD (byte-identical in
OSVAI/Af-DCD@5b086a7 losses/kd.py).

    p_t[n] = softmax(z_t[n] / T),  log q[n] = log_softmax(z_s[n] / T)     (n = pixel, B*h*w of them)
    L_kd   = T^2 * (1 / (B*h*w)) * sum_n sum_c p_t[n,c] * (log p_t[n,c] - log q[n,c])
    total  = lambda_kd * L_kd            (lambda_kd 1, T 1 in every CIRKD script)

No labels and no ignore mask: every pixel is distilled, at the model's output stride.

Differences from the official code: the teacher logits are detached inside the loss (the
official code relied on the caller's no_grad); the loss is computed in float32 (or float64 when
given float64) so it is AMP-safe; shapes are checked with a clear error instead of a reshape
that could silently mix pixels.

``kd_loss`` / ``KDLoss`` are reused by the other methods (SKD, IFVD, CWD, AT, FitNet, CIRKD,
Af-DCD, MasKD); ``add_kd_args`` / ``resolve_kd`` give them the shared ``--lambda-kd`` and
``--kd-temperature`` flags.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick, register


def as_float(x: Tensor) -> Tensor:
    """Half/bfloat16 -> float32 (float32/float64 unchanged), so losses are AMP-safe."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """CIRKD's pixel-wise KD: KL(p_t || q_s) summed over classes, mean over B*h*w pixels, times T^2."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError("kd_loss: student logits %s and teacher logits %s must have the same shape "
                         "(same number of classes and output stride)"
                         % (tuple(student_logits.shape), tuple(teacher_logits.shape)))
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


@register("kd")
class KD(KDTermMixin, DistillMethod):
    """``--kd-method kd``: lambda_kd * KD(student logits, teacher logits)."""

    def __init__(self, lambda_kd: float = 1.0, temperature: float = 1.0) -> None:
        super().__init__()
        self.init_kd(lambda_kd, temperature)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_kd_args(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "KD":
        lambda_kd, temperature = resolve_kd(args)
        return cls(lambda_kd, temperature)

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        return self.kd_terms(ctx)

    def describe(self) -> str:
        return "kd(lambda_kd=%g, T=%g)" % (self.lambda_kd, self.kd.temperature if self.kd else 0.0)
