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
given float64) so it is AMP-safe; batch and classes are checked with a clear error instead of a
reshape that could silently mix pixels; teacher logits at another output stride (an mmseg HRNet
student at 1/4, a PSPNet teacher at 1/8) are resized to the student's size (bilinear,
align_corners False) instead of failing.

``kd_loss`` / ``KDLoss`` / ``add_kd_args`` / ``resolve_kd`` live in ``losses/common.py`` so the other
methods (SKD, IFVD, CWD, AT, FitNet, CIRKD, Af-DCD, MasKD) share them without importing this file.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

from torch import Tensor

from .base import ChannelInfo, DistillMethod, StepContext
from .registry import register
from .common import (KDLoss, KDTermMixin, add_kd_args, as_float, kd_loss,  # noqa: F401  (re-exported)
                     require_teacher, resolve_kd)


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
