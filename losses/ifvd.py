"""IFVD: Intra-class Feature Variation Distillation.

Paper: Wang, Zhou, Lu, Liu, Pan, Li, "Intra-class Feature Variation Distillation for Semantic
Segmentation", ECCV 2020 (authors' code YukangWang/IFVD utils/criterion.py:CriterionIFV).
Official code followed: winycg/CIRKD@2d8ad0f losses/ifvd.py:CriterionIFV, train_kd.py
(unchanged at dab64db).

    l      = nearest-resize(labels -> h x w)          (legacy 'nearest': Y[floor(y*H/h), floor(x*W/w)])
    mu_b,k = sum_{p: l_p = k} f_p / (#{p: l_p = k} + 1e-6)        per image, per class
    c_p    = mu_{b,l_p} if l_p in [0, K) else f_p        (ignored pixels compare with themselves)
    v_p    = cos(f_p, c_p) over channels (eps 1e-8)
    L_ifv  = mean over all B*h*w positions of (v^S_p - v^T_p)^2     (ignored positions count, give 0)
    student: lambda_kd*L_kd + lambda_ifv*L_ifv + lambda_adv*L_G      (1, 20, 0.001; D as in skd.py, lambda_d 0.1)

Gradients flow through the student prototypes as in the official code.

Differences from the official code: the per-class loop is vectorised with a one-hot matrix
product (same per-image prototypes, same result); the framework's ignore value
(``ctx.ignore_index``, -1) and any label outside [0, K) are treated as ignore, exactly as the
official loop did for -1; the teacher feature is detached; only active terms are built (see
skd.py for the adversarial term's own differences).
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick
from .registry import register
from .adversarial import AdversarialMixin, add_adv_args, resolve_adv
from .common import KDTermMixin, add_kd_args, as_float, describe_terms, num_classes_of, require_teacher, resolve_kd


def labels_to_feature_size(labels: Tensor, size) -> Tensor:
    """(B, H, W) labels -> (B, h, w) with PyTorch's legacy 'nearest' rule, as the official code."""
    if labels.dim() != 3:
        raise ValueError("IFVD: labels must be (B, H, W), got shape %s" % (tuple(labels.shape),))
    return F.interpolate(labels.unsqueeze(1).float(), size=tuple(size), mode="nearest").squeeze(1).long()


def class_variation_map(feat: Tensor, labels: Tensor, valid: Tensor, num_classes: int) -> Tensor:
    """v_p = cos(f_p, prototype of p's class) for valid p, 1 (f_p with itself) elsewhere. (B, h, w)."""
    b, c, h, w = feat.shape
    flat = feat.flatten(2)                                              # (B, C, N)
    index = torch.where(valid, labels, torch.zeros_like(labels)).flatten(1)   # (B, N)
    onehot = F.one_hot(index, num_classes).to(feat.dtype) * valid.flatten(1).unsqueeze(-1).to(feat.dtype)
    sums = torch.bmm(flat, onehot)                                      # (B, C, K)
    counts = onehot.sum(1)                                              # (B, K)
    prototypes = sums / (counts.unsqueeze(1) + 1e-6)
    centers = torch.gather(prototypes, 2, index.unsqueeze(1).expand(b, c, h * w))   # (B, C, N)
    centers = torch.where(valid.flatten(1).unsqueeze(1), centers, flat)
    return F.cosine_similarity(flat, centers, dim=1).view(b, h, w)


def ifv_loss(student_feat: Tensor, teacher_feat: Tensor, labels: Tensor, num_classes: int,
             ignore_index: int = -1) -> Tensor:
    """MSE between the student's and teacher's intra-class feature variation maps."""
    if student_feat.shape[0] != teacher_feat.shape[0] or student_feat.shape[2:] != teacher_feat.shape[2:]:
        raise ValueError("IFVD: student feature %s and teacher feature %s need the same batch and spatial size"
                         % (tuple(student_feat.shape), tuple(teacher_feat.shape)))
    if labels.shape[0] != student_feat.shape[0]:
        raise ValueError("IFVD: %d label maps for a batch of %d features" % (labels.shape[0], student_feat.shape[0]))
    student_feat = as_float(student_feat)
    teacher_feat = as_float(teacher_feat.detach()).to(student_feat.dtype)
    small = labels_to_feature_size(labels.to(student_feat.device), student_feat.shape[2:])
    valid = (small >= 0) & (small < num_classes) & (small != ignore_index)
    v_student = class_variation_map(student_feat, small, valid, num_classes)
    v_teacher = class_variation_map(teacher_feat, small, valid, num_classes)
    return F.mse_loss(v_student, v_teacher)


class IFVDLoss(nn.Module):
    """``IFVDLoss(num_classes, ignore_index=-1)(student_feat, teacher_feat, labels)``."""

    def __init__(self, num_classes: int, ignore_index: int = -1) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)

    def forward(self, student_feat: Tensor, teacher_feat: Tensor, labels: Tensor) -> Tensor:
        return ifv_loss(student_feat, teacher_feat, labels, self.num_classes, self.ignore_index)


@register("ifvd")
class IFVD(KDTermMixin, AdversarialMixin, DistillMethod):
    """``--kd-method ifvd``: KD + intra-class feature variation on head_feat + adversarial term."""

    def __init__(self, num_classes: int, lambda_kd: float = 1.0, temperature: float = 1.0,
                 lambda_ifv: float = 20.0, lambda_adv: float = 0.001, lambda_d: float = 0.1,
                 ignore_index: int = -1) -> None:
        super().__init__()
        self.init_kd(lambda_kd, temperature)
        self.lambda_ifv = float(lambda_ifv)
        self.ifv = IFVDLoss(num_classes, ignore_index) if self.lambda_ifv != 0 else None
        self.init_adv(num_classes, lambda_adv, lambda_d)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_kd_args(parser)
        add_flag(parser, "--lambda-ifv", dest="lambda_ifv", type=float, default=None,
                 help="weight of the IFVD term on head_feat (default 20)")
        add_adv_args(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "IFVD":
        lambda_kd, temperature = resolve_kd(args)
        lambda_adv, lambda_d = resolve_adv(args)
        return cls(num_classes_of(args, student_info), lambda_kd, temperature,
                   float(pick(getattr(args, "lambda_ifv", None), 20.0)), lambda_adv, lambda_d,
                   int(pick(getattr(args, "ignore_index", None), -1)))

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        terms = self.kd_terms(ctx)
        if self.ifv is not None:
            terms["ifv"] = self.lambda_ifv * ifv_loss(ctx.student.head_feat, ctx.teacher.head_feat, ctx.labels,
                                                      self.ifv.num_classes, ctx.ignore_index)
        terms.update(self.adv_terms(ctx))
        return terms

    def describe(self) -> str:
        h = self.holistic
        return describe_terms("ifvd", {"kd": self.lambda_kd, "ifv": self.lambda_ifv,
                                       "adv_G": h.lambda_adv if h else 0, "adv_D": h.lambda_d if h else 0})
