"""Tf-KD: Teacher-free Knowledge Distillation, self-training (``self``) and virtual teacher (``reg``).

Paper: Li Yuan, Francis E.H. Tay, Guilin Li, Tao Wang, Jiashi Feng, "Revisiting Knowledge Distillation via
Label Smoothing Regularization", CVPR 2020. Official: yuanli2333/Teacher-free-Knowledge-Distillation@d000ab3,
``my_loss_function.py:loss_kd_self`` and ``loss_kd_regularization`` (CIFAR code).

Every labelled pixel is one classification row; P = number of pixels whose label != ignore_index, K classes:

    CE   = (1/P) sum_i -log softmax(z_i)[y_i]
    self: q_i = softmax(t_i / T)  (t: frozen trained copy of the student architecture)
          KL = 1/(P*K) sum_ik q_ik (log q_ik - log_softmax(z_i / T)_k) * T^2 * m
    reg:  d_ik = a if k = y_i else (1-a)/(K-1), a = 0.99;  q_i = softmax(d_i / T)  (student not tempered)
          KL = 1/(P*K) sum_ik q_ik (log q_ik - log_softmax(z_i)_k) * m          (no T^2)
    loss = (1 - alpha) * CE + alpha * KL

The method owns its task loss: ``task_loss`` returns ``"task"`` = (1-alpha) * CE (same resize and ignore
rule as losses/task.py) plus the usual aux-head term; ``forward`` returns ``"tf_kd"`` = alpha * KL.

Differences from the official code :
- Segmentation hyper-parameters were never published (the seed's numbers do not name the variant). Defaults:
  the official CIFAR ResNet18 rows (self: alpha 0.95, T 6, m 50; reg: alpha 0.1, T 20, m 100), the
  MobileNetV2 rows for a MobileNetV2 student (self: 0.95, 20, 1; reg: 0.95, 40, 1), variant ``reg``.
- Ignore pixels (project adaptation): dropped from CE and KL; P counts valid pixels, ignored pixels get no
  gradient. A batch with no valid pixel gives graph-connected zeros.
- Logits are upsampled to label size (bilinear, align_corners=True) before the loss, as the task CE does.
- KL normalisation 1/(P*K) and the reg form (softmax of a probability vector / T, untempered student, no T^2)
  follow the code, not paper Eq. 9. The reg KL is computed per pixel in closed form (its target depends only
  on the label), which equals the official dense computation without building a (P, K) target.
- Computed in float32 under AMP.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick
from .registry import register
from .task import upsample_to

VARIANTS = ("self", "reg")

# (alpha, temperature, multiplier) from the official experiments/**/params.json (CIFAR-100)
DEFAULTS = {
    ("self", "resnet"): (0.95, 6.0, 50.0),
    ("self", "mobilenet"): (0.95, 20.0, 1.0),
    ("reg", "resnet"): (0.1, 20.0, 100.0),
    ("reg", "mobilenet"): (0.95, 40.0, 1.0),
}


def _float32(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class TfKDLoss(torch.nn.Module):
    """``TfKDLoss(variant, alpha, temperature, multiplier)(logits, labels, teacher_logits=None)``
    -> {"loss", "ce", "kl"}; ``kl`` includes T^2*m (self) or m (reg), ``ce`` is unweighted.

    ``logits`` are (N, K, H, W) at label resolution or (R, K) rows; ``labels`` (N, H, W) or (R,)."""

    def __init__(self, variant: str = "reg", alpha: float = 0.1, temperature: float = 20.0,
                 multiplier: float = 100.0, correct_prob: float = 0.99, ignore_index: int = 255) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError("Tf-KD variant must be one of %s, got %r" % (VARIANTS, variant))
        if temperature <= 0:
            raise ValueError("Tf-KD temperature must be positive, got %r" % temperature)
        self.variant = variant
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.multiplier = float(multiplier)
        self.correct_prob = float(correct_prob)
        self.ignore_index = int(ignore_index)

    def virtual_teacher(self, num_classes: int, like: Tensor) -> Tensor:
        """(q_true, q_other): softmax(d / T) of the hand-made distribution d (a on the label)."""
        other = (1.0 - self.correct_prob) / (num_classes - 1)
        d = torch.full((num_classes,), other, dtype=like.dtype, device=like.device)
        d[0] = self.correct_prob
        q = F.softmax(d / self.temperature, dim=0)
        return q[:2]

    def forward(self, logits: Tensor, labels: Tensor, teacher_logits: Optional[Tensor] = None) -> Dict[str, Tensor]:
        if logits.shape[:1] + logits.shape[2:] != labels.shape:
            raise ValueError("Tf-KD: logits %s do not match labels %s; upsample the logits to label size first"
                             % (tuple(logits.shape), tuple(labels.shape)))
        logits = _float32(logits)
        num_classes = logits.shape[1]
        valid = labels != self.ignore_index
        num_valid = int(valid.sum())
        if num_valid == 0:
            zero = logits.sum() * 0.0
            return {"loss": zero, "ce": zero, "kl": zero}
        safe_labels = torch.where(valid, labels, torch.zeros_like(labels)).long().unsqueeze(1)
        mask = valid.to(logits.dtype)

        log_prob = F.log_softmax(logits, dim=1)
        ce = -(log_prob.gather(1, safe_labels).squeeze(1) * mask).sum() / num_valid

        if self.variant == "self":
            if teacher_logits is None:
                raise ValueError("Tf-KD 'self' needs teacher_logits (a trained copy of the student)")
            if teacher_logits.shape != logits.shape:
                raise ValueError("Tf-KD: teacher logits %s do not match student logits %s"
                                 % (tuple(teacher_logits.shape), tuple(logits.shape)))
            t = self.temperature
            teacher_scaled = _float32(teacher_logits.detach()).to(logits.dtype) / t
            q = F.softmax(teacher_scaled, dim=1)
            kl_pixel = (q * (F.log_softmax(teacher_scaled, dim=1) - F.log_softmax(logits / t, dim=1))).sum(1)
            scale = t * t * self.multiplier
        else:
            q_true, q_other = self.virtual_teacher(num_classes, logits)
            # sum_k q_k log q_k is a constant; sum_k q_k log p_k = q_other * sum_k log p_k + (q_true - q_other) log p_y
            neg_entropy = q_true * q_true.log() + (num_classes - 1) * q_other * q_other.log()
            cross = q_other * log_prob.sum(1) + (q_true - q_other) * log_prob.gather(1, safe_labels).squeeze(1)
            kl_pixel = neg_entropy - cross
            scale = self.multiplier
        kl = (kl_pixel * mask).sum() / (num_valid * num_classes) * scale
        return {"loss": (1.0 - self.alpha) * ce + self.alpha * kl, "ce": ce, "kl": kl}


@register("tf_kd")
class TfKD(DistillMethod):
    """Tf-KD; the variant comes from ``--tf-kd-variant`` (default reg). ``self`` needs one teacher."""

    num_teachers = 0
    fixed_variant: Optional[str] = None

    def __init__(self, variant: str = "reg", alpha: float = 0.1, temperature: float = 20.0,
                 multiplier: float = 100.0, correct_prob: float = 0.99, ignore_index: int = -1) -> None:
        super().__init__()
        self.loss = TfKDLoss(variant, alpha, temperature, multiplier, correct_prob, ignore_index)
        self.num_teachers = 1 if variant == "self" else 0

    @classmethod
    def variant_from_args(cls, args: argparse.Namespace) -> str:
        given = getattr(args, "tf_kd_variant", None)
        if cls.fixed_variant is not None:
            if given not in (None, cls.fixed_variant):
                raise ValueError("--kd-method %s conflicts with --tf-kd-variant %s; drop one"
                                 % (cls.name, given))
            return cls.fixed_variant
        variant = pick(given, "reg")
        if variant not in VARIANTS:
            raise ValueError("--tf-kd-variant must be one of %s, got %r" % (VARIANTS, variant))
        return variant

    @classmethod
    def teachers_needed(cls, args: argparse.Namespace) -> int:
        return 1 if cls.variant_from_args(args) == "self" else 0

    @classmethod
    def teacher_is_student(cls, args: argparse.Namespace) -> bool:
        return cls.variant_from_args(args) == "self"

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--tf-kd-variant", choices=VARIANTS, default=None,
                 help="self: a trained copy of the student is the teacher; reg: virtual teacher (default reg)")
        add_flag(parser, "--tf-kd-alpha", type=float, default=None,
                 help="weight of the KL term, CE gets 1-alpha (default per variant/backbone: self 0.95; "
                      "reg 0.1 ResNet, 0.95 MobileNetV2)")
        add_flag(parser, "--tf-kd-temperature", type=float, default=None,
                 help="Tf-KD temperature (default self 6 ResNet / 20 MobileNetV2; reg 20 / 40)")
        add_flag(parser, "--tf-kd-multiplier", type=float, default=None,
                 help="Tf-KD KL multiplier m (default self 50 ResNet / 1 MobileNetV2; reg 100 / 1)")
        add_flag(parser, "--tf-kd-correct-prob", type=float, default=None,
                 help="reg: probability of the true class in the virtual teacher (default 0.99)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "TfKD":
        variant = cls.variant_from_args(args)
        if variant == "self" and teacher_info is not None and "logits" in teacher_info and \
                "logits" in student_info and teacher_info["logits"] != student_info["logits"]:
            raise ValueError("Tf-KD self: teacher has %d classes, student %d; the teacher must be a trained "
                             "copy of the student" % (teacher_info["logits"], student_info["logits"]))
        family = "mobilenet" if "mobilenet" in str(getattr(args, "student_backbone", "")).lower() else "resnet"
        alpha, temperature, multiplier = DEFAULTS[(variant, family)]
        correct_prob = pick(getattr(args, "tf_kd_correct_prob", None), 0.99)
        if not 0.0 < correct_prob < 1.0:
            raise ValueError("--tf-kd-correct-prob must be in (0, 1), got %r" % correct_prob)
        return cls(variant=variant,
                   alpha=pick(getattr(args, "tf_kd_alpha", None), alpha),
                   temperature=pick(getattr(args, "tf_kd_temperature", None), temperature),
                   multiplier=pick(getattr(args, "tf_kd_multiplier", None), multiplier),
                   correct_prob=correct_prob,
                   ignore_index=getattr(args, "ignore_index", -1))

    def _outputs(self, ctx: StepContext) -> Dict[str, Tensor]:
        self.loss.ignore_index = ctx.ignore_index
        size = ctx.labels.shape[-2:]
        logits = upsample_to(_float32(ctx.student.logits), size)
        teacher_logits = None
        if self.loss.variant == "self":
            if ctx.teacher is None:
                raise ValueError("Tf-KD self needs a teacher (a trained checkpoint of the student architecture); "
                                 "pass --teacher-pretrained or use --tf-kd-variant reg")
            teacher_logits = upsample_to(_float32(ctx.teacher.logits.detach()), size)
        return self.loss(logits, ctx.labels, teacher_logits)

    def task_loss(self, ctx: StepContext) -> Dict[str, Tensor]:
        """(1 - alpha) * CE replaces the main CE; the aux term stays as the task criterion has it."""
        terms = super().task_loss(ctx)
        terms["task"] = (1.0 - self.loss.alpha) * self._outputs(ctx)["ce"]
        return terms

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        return {"tf_kd": self.loss.alpha * self._outputs(ctx)["kl"]}

    def describe(self) -> str:
        return "tf_kd(variant=%s, alpha=%g, T=%g, multiplier=%g)" % (
            self.loss.variant, self.loss.alpha, self.loss.temperature, self.loss.multiplier)


@register("tf_kd_self")
class TfKDSelf(TfKD):
    """Tf-KD self-training: the teacher is a trained checkpoint of the student's architecture."""

    num_teachers = 1
    fixed_variant = "self"


@register("tf_kd_reg")
class TfKDReg(TfKD):
    """Tf-KD with the hand-made virtual teacher; no teacher network."""

    num_teachers = 0
    fixed_variant = "reg"
