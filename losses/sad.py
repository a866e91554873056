"""SAD: Self Attention Distillation (each backbone stage mimics the next stage's attention map).

Paper: Yuenan Hou, Zheng Ma, Chunxiao Liu, Chen Change Loy, "Learning Lightweight Lane Detection CNNs by
Self Attention Distillation", ICCV 2019. Official: cardwing/Codes-for-Lane-Detection@a224eb4 (Lua Torch7,
no runnable SAD loss); followed here: the PyTorch port InhwanBae/ENet-SAD_Pytorch@d612a95,
``model_ENET_SAD.py:ENet_SAD.at_gen`` with ``SpatialSoftmax``.

For student stages A_1..A_M (shallow to deep):

    G(A) = sum_c A_c^2                                  (N x 1 x H x W)
    Psi(A; S) = softmax over the positions of R_S(G(A))  (R_S: bilinear resize to S, align_corners=False,
                                                          only when G(A) is not already of size S)
    path(A_m, A_m+1) = mean over N*H_m*W_m of (Psi(A_m; S_m) - Psi(A_m+1; S_m))^2
    L_SAD = gamma * sum_m path(A_m, A_m+1)   while iteration >= start, 0 before

Differences from the official code / port :
- Segmentation hyper-parameters were never published. Defaults: gamma = 0.1 (paper and port), stages
  c1, c2, c3, c4 (three paths, the port's "every consecutive encoder stage"), and the start at
  round(2/3 * max_iterations), the port's 40000 of 60000; ``--sad-start-fraction 0`` starts at once.
- The Lua sketch upsamples both maps x8 and normalises with Torch7's SpatialSoftMax (across the feature
  axis); this follows the paper and the port: softmax over the positions, later map resized to the earlier.
- The port decides whether to resize by comparing full tensor sizes (channels included) and then fails on
  stages that differ only in channels; this compares spatial sizes only.
- The port resizes with scale_factor=2; this resizes to the earlier map's (H, W) (identical for a factor 2).
- ``--sad-detach-target`` (default off, as the port) stops the gradient into the later map.
- Before the start iteration the term is a graph-connected zero (stable logging keys, no DDP surprises).
- Computed in float32 under AMP (sum of squares over 512 channels can overflow float16).
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, on_off, pick
from .registry import register
from .common import parse_stages, student_stage_features


def sad_attention(feat: Tensor, size: Tuple[int, int]) -> Tensor:
    """Spatial-softmax attention of ``feat`` (N, C, H, W) at ``size`` (H', W') -> (N, H'*W')."""
    if feat.dtype in (torch.float16, torch.bfloat16):
        feat = feat.float()
    energy = feat.pow(2).sum(dim=1, keepdim=True)
    if tuple(energy.shape[-2:]) != tuple(size):
        energy = F.interpolate(energy, size=tuple(size), mode="bilinear", align_corners=False)
    return F.softmax(energy.flatten(1), dim=1)


class SADLoss(torch.nn.Module):
    """``SADLoss(weight, detach_target)(feats)`` -> {"loss": weight * sum(paths), "paths": [M-1 unweighted]}."""

    def __init__(self, weight: float = 0.1, detach_target: bool = False) -> None:
        super().__init__()
        self.weight = float(weight)
        self.detach_target = bool(detach_target)

    def forward(self, feats: Sequence[Tensor]) -> Dict[str, object]:
        if len(feats) < 2:
            raise ValueError("SAD needs at least two features, got %d" % len(feats))
        paths: List[Tensor] = []
        for earlier, later in zip(feats[:-1], feats[1:]):
            if self.detach_target:
                later = later.detach()
            size = tuple(earlier.shape[-2:])
            paths.append(F.mse_loss(sad_attention(earlier, size), sad_attention(later, size)))
        return {"loss": self.weight * torch.stack(paths).sum(), "paths": paths}


@register("sad")
class SAD(DistillMethod):
    """SAD on the student's own backbone stages, switched on after a fraction of the schedule."""

    num_teachers = 0
    student_stages = True

    def __init__(self, weight: float = 0.1, start_iteration: int = 0,
                 stages: Sequence[str] = ("c1", "c2", "c3", "c4"), detach_target: bool = False) -> None:
        super().__init__()
        self.loss = SADLoss(weight, detach_target)
        self.start_iteration = int(start_iteration)
        self.stages = list(stages)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--lambda-sad", type=float, default=None, help="SAD weight gamma (default 0.1)")
        add_flag(parser, "--sad-start-fraction", type=float, default=None,
                 help="SAD is on from iteration round(fraction * max_iterations) (default 2/3; 0 = from the start)")
        add_flag(parser, "--sad-stages", type=str, default=None,
                 help="student stages, shallow to deep; consecutive pairs are paths (default c1,c2,c3,c4)")
        on_off(parser, "sad-detach-target", None, "stop the gradient into the later stage's attention (default off)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "SAD":
        fraction = pick(getattr(args, "sad_start_fraction", None), 2.0 / 3.0)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("--sad-start-fraction must be in [0, 1], got %r" % fraction)
        return cls(weight=pick(getattr(args, "lambda_sad", None), 0.1),
                   start_iteration=round(fraction * int(args.max_iterations)),
                   stages=parse_stages(pick(getattr(args, "sad_stages", None), "c1,c2,c3,c4"), "--sad-stages"),
                   detach_target=pick(getattr(args, "sad_detach_target", None), False))

    def active(self, iteration: int) -> bool:
        return iteration >= self.start_iteration

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        feats = student_stage_features(ctx, self.stages, "sad")
        if not self.active(ctx.iteration):
            # float32 sum: a float16 sum of a large stage overflows to inf, and inf * 0 is NaN
            return {"sad": feats[-1].sum(dtype=torch.float32) * 0.0}
        return {"sad": self.loss(feats)["loss"]}

    def describe(self) -> str:
        return "sad(weight=%g, stages=%s, from iteration %d%s)" % (
            self.loss.weight, ",".join(self.stages), self.start_iteration,
            ", target detached" if self.loss.detach_target else "")
