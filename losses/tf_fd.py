"""Tf-FD: Teacher-free Feature Distillation (the student regularises itself with its own features).

Paper: Lujun Li, "Self-Regulated Feature Learning via Teacher-free Feature Distillation", ECCV 2022.
Official: lliai/Teacher-free-Distillation@3427f98, ``train_kd.py:intra_fd`` and the ``kd_mode == 'tfd'``
branch of ``train_kd.py:train`` (what ran for the paper's CIFAR numbers), and ``README.md:TfFD``.

For student features f_1..f_M ordered shallow to deep (default M = 3):

    intra(f) = mean((g[:, :C/2] - g[:, C/2:])^2),  g = f with channels sorted by
               s_c = mean_{n,h,w} F.normalize(f, dim=(H, W)), descending (the sort passes no gradient)
    inter(f_s, f_t) = mean((P(f_s)[:, :c] - sg(P(f_t))[:, :c])^2),  c = min(C_s, C_t), P average-pools the
               larger map to the smaller one's (H, W)
    train_kd form (default): L = lambda_inter * mean_{i<j} inter(f_i, f_j) + lambda_intra * mean_i intra(f_i)
    readme form:             L = lambda_intra * (sum_{i<j} inter(f_i, f_j) + sum_i intra(f_i))
    training: L_total = CE + min(1, iteration / warmup_iters) * L

Differences from the official code (all deliberate):
- Segmentation hyper-parameters were never published (the README's segmentation numbers are a third party's,
  without settings). Defaults: the README-command lambdas (inter 5e-4, intra 8e-4), features c2, c3, c4 of the
  student backbone (post-ReLU; all at 1/8 for the dilated ResNet-18, so only channel slicing happens), and the
  20-of-240-epoch KD warm-up turned into a linear warm-up over the first 1/12 of the iterations.
- ``train_kd`` form by default; the README form (inter sum weighted by lambda_intra, no /3, lambda_inter
  unused) is ``--tf-fd-form readme``. The README snippet itself is not valid Python; its helpers are used.
- The README pools non-square maps to (H_t, H_t); this pools to (H_t, W_t), which equals ``train_kd.py``'s
  ``avg_pool2d(kernel)`` for integer ratios.
- With more than three features the means run over all pairs i < j and all features (M = 3 is the official).
- Odd channel counts are rejected (the halves would differ in size). Computed in float32 under AMP.
"""
from __future__ import annotations

import argparse
from itertools import combinations
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick
from .registry import register
from .common import parse_stages, student_stage_features

FORMS = ("train_kd", "readme")


def _float32(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def tffd_intra(feat: Tensor) -> Tensor:
    """MSE between the top and bottom salience halves of one feature map's channels."""
    channels = feat.shape[1]
    if channels % 2:
        raise ValueError("Tf-FD intra term needs an even channel count, got %d; pick other --tf-fd-stages"
                         % channels)
    with torch.no_grad():
        salience = F.normalize(feat, p=2, dim=(2, 3)).mean(dim=(0, 2, 3))
        _, order = torch.sort(salience, dim=0, descending=True)
    ranked = torch.index_select(feat, 1, order)
    return F.mse_loss(ranked[:, :channels // 2], ranked[:, channels // 2:])


def tffd_inter(shallow: Tensor, deep: Tensor) -> Tensor:
    """MSE from a shallower feature to a detached deeper one (larger map pooled, common channels)."""
    deep = deep.detach()
    size_shallow, size_deep = tuple(shallow.shape[-2:]), tuple(deep.shape[-2:])
    if size_shallow != size_deep:
        if size_shallow[0] * size_shallow[1] > size_deep[0] * size_deep[1]:
            shallow = F.adaptive_avg_pool2d(shallow, size_deep)
        else:
            deep = F.adaptive_avg_pool2d(deep, size_shallow)
    channels = min(shallow.shape[1], deep.shape[1])
    return F.mse_loss(shallow[:, :channels], deep[:, :channels])


class TfFDLoss(torch.nn.Module):
    """``TfFDLoss(lambda_inter, lambda_intra, form)(feats)`` -> {"loss", "intra": [M], "inter": [pairs],
    "weighted_inter", "weighted_intra"}; ``pairs`` lists the (i, j) index pairs of ``inter``."""

    def __init__(self, lambda_inter: float, lambda_intra: float, form: str = "train_kd") -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError("Tf-FD form must be one of %s, got %r" % (FORMS, form))
        self.lambda_inter = float(lambda_inter)
        self.lambda_intra = float(lambda_intra)
        self.form = form

    @staticmethod
    def pairs(num_feats: int) -> List[tuple]:
        # (0,1), (1,2), (0,2) for three features: train_kd.py's order
        return sorted(combinations(range(num_feats), 2), key=lambda p: (p[1] - p[0], p[0]))

    def forward(self, feats: Sequence[Tensor]) -> Dict[str, object]:
        if len(feats) < 2:
            raise ValueError("Tf-FD needs at least two features, got %d" % len(feats))
        feats = [_float32(f) for f in feats]
        intra = [tffd_intra(f) for f in feats]
        pairs = self.pairs(len(feats))
        inter = [tffd_inter(feats[i], feats[j]) for i, j in pairs]
        if self.form == "train_kd":
            weighted_inter = self.lambda_inter * torch.stack(inter).mean()
            weighted_intra = self.lambda_intra * torch.stack(intra).mean()
        else:
            weighted_inter = self.lambda_intra * torch.stack(inter).sum()
            weighted_intra = self.lambda_intra * torch.stack(intra).sum()
        return {"loss": weighted_inter + weighted_intra, "intra": intra, "inter": inter, "pairs": pairs,
                "weighted_inter": weighted_inter, "weighted_intra": weighted_intra}


@register("tf_fd")
class TfFD(DistillMethod):
    """Tf-FD on the student's own backbone stages; no teacher, nothing learned."""

    num_teachers = 0
    student_stages = True

    def __init__(self, lambda_inter: float, lambda_intra: float, form: str = "train_kd",
                 stages: Sequence[str] = ("c2", "c3", "c4"), warmup_iterations: int = 0) -> None:
        super().__init__()
        self.loss = TfFDLoss(lambda_inter, lambda_intra, form)
        self.stages = list(stages)
        self.warmup_iterations = int(warmup_iterations)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--lambda-tf-fd-inter", type=float, default=None,
                 help="Tf-FD inter-layer weight (default 5e-4, the README command)")
        add_flag(parser, "--lambda-tf-fd-intra", type=float, default=None,
                 help="Tf-FD intra-layer weight (default 8e-4, the README command)")
        add_flag(parser, "--tf-fd-form", choices=FORMS, default=None,
                 help="train_kd: lambda_inter*mean(inter)+lambda_intra*mean(intra) (default); "
                      "readme: lambda_intra*(sum inter + sum intra), as the README forward")
        add_flag(parser, "--tf-fd-stages", type=str, default=None,
                 help="student stages, shallow to deep (default c2,c3,c4)")
        add_flag(parser, "--tf-fd-warmup-fraction", type=float, default=None,
                 help="linear warm-up of the Tf-FD weight over this fraction of the iterations "
                      "(default 1/12 = the official 20 of 240 epochs; 0 disables)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "TfFD":
        stages = parse_stages(pick(getattr(args, "tf_fd_stages", None), "c2,c3,c4"), "--tf-fd-stages")
        for s in stages:
            if s in student_info and student_info[s] % 2:
                raise ValueError("Tf-FD: student stage %s has %d channels; the intra term needs an even count, "
                                 "pick other --tf-fd-stages" % (s, student_info[s]))
        fraction = pick(getattr(args, "tf_fd_warmup_fraction", None), 1.0 / 12.0)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("--tf-fd-warmup-fraction must be in [0, 1], got %r" % fraction)
        return cls(lambda_inter=pick(getattr(args, "lambda_tf_fd_inter", None), 5e-4),
                   lambda_intra=pick(getattr(args, "lambda_tf_fd_intra", None), 8e-4),
                   form=pick(getattr(args, "tf_fd_form", None), "train_kd"),
                   stages=stages,
                   warmup_iterations=round(fraction * int(args.max_iterations)))

    def warmup_factor(self, iteration: int) -> float:
        """``min(1, iteration / warmup_iterations)``, as ``min(1, epoch / kd_warm_up)`` (1-based) officially."""
        if self.warmup_iterations <= 0:
            return 1.0
        return min(1.0, float(iteration) / self.warmup_iterations)

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        feats = student_stage_features(ctx, self.stages, "tf_fd")
        out = self.loss(feats)
        factor = self.warmup_factor(ctx.iteration)
        return {"tf_fd_inter": factor * out["weighted_inter"], "tf_fd_intra": factor * out["weighted_intra"]}

    def describe(self) -> str:
        return "tf_fd(form=%s, stages=%s, lambda_inter=%g, lambda_intra=%g, warmup=%d it)" % (
            self.loss.form, ",".join(self.stages), self.loss.lambda_inter, self.loss.lambda_intra,
            self.warmup_iterations)
