"""SKD: Structured Knowledge Distillation (pixel-wise + pair-wise + holistic).

Paper: Liu, Chen, Liu, Qin, Luo, Wang, "Structured Knowledge Distillation for Semantic
Segmentation", CVPR 2019. Official code followed (the one the CIRKD/Af-DCD tables use):
winycg/CIRKD@2d8ad0f losses/skd.py:CriterionStructuralKD, losses/adv.py:CriterionAdvForG,
CriterionAdv, utils/sagan.py:Discriminator, wired in train_kd.py (all unchanged at dab64db).

    pixel-wise:  L_kd  = KD(student logits, teacher logits), T = 1          (losses/kd.py)
    pair-wise:   P = maxpool2x2(F, ceil_mode), P^ = P / ||P||_2 over channels (per position)
                 A = P^T P^ (N x N per image),  L_pa = mean_{b,i,j} (A_s - A_t)^2   on head_feat
    holistic:    L_G = -mean(D(z_s));  L_D = mean(relu(1 - D(z_t))) + mean(relu(1 + D(z_s.detach())))
    student:     lambda_kd*L_kd + lambda_skd*L_pa + lambda_adv*L_G     (1, 10, 0.001)
    discriminator (own Adam 4e-4, betas (0.9, 0.99), after the student step): lambda_d*L_D  (0.1)

D is the SAGAN-like discriminator of the card: BatchNorm on the logits (the train script turns
it into SyncBatchNorm under DDP), four spectral-norm 4x4 stride-2 convs with LeakyReLU(0.1),
self-attention after the 3rd and 4th, a final valid 4x4 conv. It needs logits >= 64x64.

Differences from the official code:
- Only the active terms are built: D and its Adam exist only when lambda_adv or lambda_d != 0,
  and D is stepped only when lambda_d != 0 (train_kd.py always ran and stepped D).
- The D loss is computed in ``after_optimizer_step`` (after the student step) instead of before
  it; D's parameters are untouched by the student step, so the value is the same. D's parameter
  gradients from L_G are not computed at all (the official code computed and discarded them).
- Spectral norm keeps u, v as buffers and uses the freshly iterated copies in the graph (the
  official code swapped ``.data`` so the backward of an earlier forward saw later u, v); the
  difference is one power iteration in D's own gradient only.
- Under DDP, D's gradients are averaged here with all_reduce (the official code DDP-wrapped D).
- D runs in float32 with autocast off; logits smaller than 64x64 raise a clear error naming
  ``--lambda-adv 0 --lambda-d 0`` as the workaround (the official code failed inside conv2d).
- D returns only its score map (the attention maps it also returned were never used).
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .adversarial import (AdversarialMixin, Discriminator, HolisticDistillation, add_adv_args,  # noqa: F401
                          adv_d_loss, adv_g_loss, resolve_adv)
from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick
from .registry import register
from .common import KDTermMixin, add_kd_args, as_float, describe_terms, num_classes_of, require_teacher, resolve_kd


def pairwise_similarity_loss(student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
    """CIRKD's pair-wise term: MSE between 2x2-max-pooled cosine affinity matrices."""
    if student_feat.shape[0] != teacher_feat.shape[0] or student_feat.shape[2:] != teacher_feat.shape[2:]:
        raise ValueError("pair-wise SKD: student feature %s and teacher feature %s need the same batch and "
                         "spatial size" % (tuple(student_feat.shape), tuple(teacher_feat.shape)))
    student_feat = as_float(student_feat)
    teacher_feat = as_float(teacher_feat.detach()).to(student_feat.dtype)

    def affinity(feat: Tensor) -> Tensor:
        feat = F.max_pool2d(feat, kernel_size=2, stride=2, padding=0, ceil_mode=True)
        feat = F.normalize(feat, p=2, dim=1).flatten(2)          # (B, C, N)
        return torch.bmm(feat.transpose(1, 2), feat)              # (B, N, N)

    return (affinity(student_feat) - affinity(teacher_feat)).pow(2).mean()


class StructuralKDLoss(nn.Module):
    """``StructuralKDLoss()(student_feat, teacher_feat)``: see ``pairwise_similarity_loss``."""

    def forward(self, student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
        return pairwise_similarity_loss(student_feat, teacher_feat)


@register("skd")
class SKD(KDTermMixin, AdversarialMixin, DistillMethod):
    """``--kd-method skd``: KD + pair-wise affinity + adversarial (holistic) distillation."""

    def __init__(self, num_classes: int, lambda_kd: float = 1.0, temperature: float = 1.0,
                 lambda_skd: float = 10.0, lambda_adv: float = 0.001, lambda_d: float = 0.1) -> None:
        super().__init__()
        self.init_kd(lambda_kd, temperature)
        self.lambda_skd = float(lambda_skd)
        self.pairwise = StructuralKDLoss() if self.lambda_skd != 0 else None
        self.init_adv(num_classes, lambda_adv, lambda_d)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_kd_args(parser)
        add_flag(parser, "--lambda-skd", dest="lambda_skd", type=float, default=None,
                 help="weight of SKD's pair-wise affinity term on head_feat (default 10)")
        add_adv_args(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "SKD":
        lambda_kd, temperature = resolve_kd(args)
        lambda_adv, lambda_d = resolve_adv(args)
        return cls(num_classes_of(args, student_info), lambda_kd, temperature,
                   float(pick(getattr(args, "lambda_skd", None), 10.0)), lambda_adv, lambda_d)

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        terms = self.kd_terms(ctx)
        if self.pairwise is not None:
            terms["skd_pairwise"] = self.lambda_skd * self.pairwise(ctx.student.head_feat, ctx.teacher.head_feat)
        terms.update(self.adv_terms(ctx))
        return terms

    def describe(self) -> str:
        h = self.holistic
        return describe_terms("skd", {"kd": self.lambda_kd, "skd_pairwise": self.lambda_skd,
                                      "adv_G": h.lambda_adv if h else 0, "adv_D": h.lambda_d if h else 0})
