"""CIRKD: Cross-Image Relational Knowledge Distillation.

Paper: C. Yang, H. Zhou, Z. An, X. Jiang, Y. Xu, Q. Zhang, "Cross-Image Relational Knowledge
Distillation for Semantic Segmentation", CVPR 2022 (arXiv 2204.06986).
Official code: winycg/CIRKD@2d8ad0f train_cirkd.py, losses/kd.py:CriterionKD,
losses/cirkd_mini_batch.py:CriterionMiniBatchCrossImagePair, losses/cirkd_memory.py:StudentSegContrast
(memory part in ``losses/cirkd_memory.py``). 

On the decoder features ``head_feat`` (student Cs, teacher Ct channels) and the logits:

    L_kd = T^2 * mean over B*h*w pixels of KL(softmax(z_t/T) || softmax(z_s/T))     (losses/kd.py)
    L_mb = 1/B^2 sum_{i,j} (1/N) sum_rows KL(softmax(F_t,i^T F_t,j / tau) || softmax(F_s,i^T F_s,j / tau))
           F = per-pixel L2-normalised features (N = h*w pixels), image i against image j (i = j included)
    L_mp, L_mr = memory pixel-to-pixel / pixel-to-region similarity KD (losses/cirkd_memory.py)
    L = lambda_kd L_kd + lambda_mb L_mb + lambda_mp L_mp + lambda_mr L_mr      (+ the task loss)

Defaults (train_cirkd.py + train_scripts): lambda_kd 1 (T 1), lambda_mb 1, lambda_mp = lambda_mr = 0.1
(Pascal VOC 0.01 each), tau 0.1, T_c 1, 20000 pixel / 2000 region slots per class, 4096 / 1024 keys
in total (per class floor(total / K) + 1, the official constructor call), 16 pixels per class per image
enqueued. SegFormer students: 2000 pixel slots and 2x2 pooling in L_mb (the official SegFormer script).

Differences from the official code (intentional):
- Only the active terms are built: a zero weight builds no criterion (no projection head and no
  queues when both memory weights are 0, only the queue of an active memory term).
- All-ignored batch: the memory terms are a graph-connected 0 instead of NaN.
- ``--fix-pixel-enqueue`` (default off = official bug reproduced), see losses/cirkd_memory.py.
- ``--group-size G``: L_mb over consecutive groups of G images, averaged over groups, to emulate the
  official 8 GPUs x 2 images on fewer GPUs (default 0 = the whole local batch, official).
- ``--minibatch-pooling``: none (official CNN default), avg2x2 (v1 ``pooling=True``, SegFormer),
  auto4x4 (the dab64db rule: 4x4 average pooling iff h >= 256 and w >= 256; ceil_mode as v1's 2x2).
- The projection head uses plain BatchNorm2d (official: SyncBatchNorm always); the training script
  converts the method to SyncBN when distributed. Under DDP the method is wrapped with
  broadcast_buffers=True: see losses/cirkd_memory.py for what happens to the enqueue.
- The random draws of the memory terms can be injected through ``ctx.extra["cirkd_draws"]``
  (``enqueue_pixel_pos``, ``pixel_index``, ``region_index``); otherwise they come from
  ``ctx.generator`` or torch's default generator.
- Everything is computed in float32 with autocast disabled (float64 when given float64).
- The mini-batch relation is computed in row chunks, each chunk's gradient applied in forward
  (``losses/cirkd_relation.py``): the official B^2 N x N matrices are never held at once.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, on_off, pick
from .registry import register
from .cirkd_memory import CIRKDMemoryLoss
from .cirkd_relation import DEFAULT_ROWS, chunked_relation_kl
from .common import add_kd_args, as_float, kd_loss, require_teacher, resolve_kd

POOLINGS = ("none", "avg2x2", "auto4x4")
TERMS = ("kd", "minibatch_pixel", "memory_pixel", "memory_region")


def memory_weight_default(dataset: str) -> float:
    """lambda_memory_pixel = lambda_memory_region: 0.01 in the Pascal VOC scripts, 0.1 elsewhere."""
    return 0.01 if dataset == "voc" else 0.1


def pool_features(feat: Tensor, pooling: str) -> Tensor:
    if pooling == "avg2x2":
        return F.avg_pool2d(feat, kernel_size=2, stride=2, ceil_mode=True)
    if pooling == "auto4x4" and feat.shape[-2] >= 256 and feat.shape[-1] >= 256:
        return F.avg_pool2d(feat, kernel_size=4, stride=4, ceil_mode=True)
    return feat


class CIRKDMiniBatchLoss(nn.Module):
    """``L_mb = CIRKDMiniBatchLoss(tau, pooling, group_size)(s_feat, t_feat)`` (no learnable parts)."""

    def __init__(self, tau: float = 0.1, pooling: str = "none", group_size: int = 0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError("--contrast-temperature must be > 0 (got %g)" % tau)
        if pooling not in POOLINGS:
            raise ValueError("--minibatch-pooling must be one of %s (got %r)" % (", ".join(POOLINGS), pooling))
        if group_size < 0:
            raise ValueError("--group-size must be >= 0 (0 = the whole local batch), got %d" % group_size)
        self.tau = float(tau)
        self.pooling = pooling
        self.group_size = int(group_size)
        self.rows_per_chunk = DEFAULT_ROWS
        self.relation_fn = chunked_relation_kl     # tests/naive_losses.py has the direct form

    def extra_repr(self) -> str:
        return "tau=%g, pooling=%s, group_size=%d" % (self.tau, self.pooling, self.group_size)

    def forward(self, s_feat: Tensor, t_feat: Tensor) -> Tensor:
        if s_feat.shape[0] != t_feat.shape[0] or s_feat.shape[-2:] != t_feat.shape[-2:]:
            raise ValueError("CIRKD mini-batch: student head_feat %s and teacher head_feat %s must have the same "
                             "batch and spatial size" % (tuple(s_feat.shape), tuple(t_feat.shape)))
        s_feat = as_float(s_feat)
        t_feat = as_float(t_feat.detach()).to(s_feat.dtype)
        with torch.autocast(device_type=s_feat.device.type, enabled=False):
            s_hat = F.normalize(pool_features(s_feat, self.pooling), p=2, dim=1)
            t_hat = F.normalize(pool_features(t_feat, self.pooling), p=2, dim=1)
            # (B, C, h, w) -> (B, N, C), pixels in row-major order.
            s_hat = s_hat.flatten(2).transpose(1, 2)
            t_hat = t_hat.flatten(2).transpose(1, 2)
            return self.relation_fn(s_hat, t_hat, self.tau, self.group_size, self.rows_per_chunk)


@register("cirkd")
class CIRKD(DistillMethod):
    """``--kd-method cirkd``: KD + mini-batch pixel relation + memory pixel/region relations."""

    def __init__(self, num_classes: int, s_channels: int, t_channels: int,
                 lambda_kd: float = 1.0, kd_temperature: float = 1.0,
                 lambda_minibatch_pixel: float = 1.0, lambda_memory_pixel: float = 0.1,
                 lambda_memory_region: float = 0.1, contrast_temperature: float = 0.1,
                 contrast_kd_temperature: float = 1.0, pixel_memory_size: int = 20000,
                 region_memory_size: int = 2000, pixel_contrast_size: Optional[int] = None,
                 region_contrast_size: Optional[int] = None, pixel_update_freq: int = 16,
                 fix_pixel_enqueue: bool = False, group_size: int = 0, pooling: str = "none",
                 ignore_index: int = -1, generator: Optional[torch.Generator] = None) -> None:
        """``pixel_contrast_size`` / ``region_contrast_size`` are per class (None: floor(4096/K)+1, floor(1024/K)+1)."""
        super().__init__()
        weights = {"kd": lambda_kd, "minibatch_pixel": lambda_minibatch_pixel,
                   "memory_pixel": lambda_memory_pixel, "memory_region": lambda_memory_region}
        for name, value in weights.items():
            if value < 0:
                raise ValueError("--lambda-%s must be >= 0 (got %g)" % (name.replace("_", "-"), value))
        if kd_temperature <= 0:
            raise ValueError("--kd-temperature must be > 0 (got %g)" % kd_temperature)
        # Only the active terms (weight != 0) are built and computed.
        self.weights: Dict[str, float] = {k: float(v) for k, v in weights.items() if v != 0}
        self.kd_temperature = float(kd_temperature)
        self.minibatch: Optional[CIRKDMiniBatchLoss] = None
        self.memory: Optional[CIRKDMemoryLoss] = None
        if "minibatch_pixel" in self.weights:
            self.minibatch = CIRKDMiniBatchLoss(contrast_temperature, pooling, group_size)
        if "memory_pixel" in self.weights or "memory_region" in self.weights:
            self.memory = CIRKDMemoryLoss(
                num_classes, s_channels, t_channels, pixel_memory_size, region_memory_size,
                pick(pixel_contrast_size, 4096 // num_classes + 1), pick(region_contrast_size, 1024 // num_classes + 1),
                tau=contrast_temperature, kd_tau=contrast_kd_temperature, ignore_index=ignore_index,
                pixel_update_freq=pixel_update_freq, fix_pixel_enqueue=fix_pixel_enqueue,
                use_pixel="memory_pixel" in self.weights, use_region="memory_region" in self.weights,
                generator=generator)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_kd_args(parser)
        add_flag(parser, "--lambda-minibatch-pixel", dest="lambda_minibatch_pixel", type=float, default=None,
                 help="cirkd: weight of the mini-batch pixel-to-pixel relation (default 1.0)")
        add_flag(parser, "--lambda-memory-pixel", dest="lambda_memory_pixel", type=float, default=None,
                 help="cirkd: weight of the memory pixel-to-pixel relation (default 0.1; voc 0.01)")
        add_flag(parser, "--lambda-memory-region", dest="lambda_memory_region", type=float, default=None,
                 help="cirkd: weight of the memory pixel-to-region relation (default 0.1; voc 0.01)")
        add_flag(parser, "--contrast-temperature", dest="contrast_temperature", type=float, default=None,
                 help="cirkd: similarity temperature tau (default 0.1)")
        add_flag(parser, "--contrast-kd-temperature", dest="contrast_kd_temperature", type=float, default=None,
                 help="cirkd: temperature of the memory similarity KD (default 1.0)")
        add_flag(parser, "--pixel-memory-size", dest="pixel_memory_size", type=int, default=None,
                 help="cirkd: pixel queue slots per class (default 20000; SegFormer students 2000)")
        add_flag(parser, "--region-memory-size", dest="region_memory_size", type=int, default=None,
                 help="cirkd: region queue slots per class (default 2000)")
        add_flag(parser, "--pixel-contrast-size", dest="pixel_contrast_size", type=int, default=None,
                 help="cirkd: pixel keys in total, floor(total/K)+1 per class (default 4096)")
        add_flag(parser, "--region-contrast-size", dest="region_contrast_size", type=int, default=None,
                 help="cirkd: region keys in total, floor(total/K)+1 per class (default 1024)")
        add_flag(parser, "--pixel-update-freq", dest="pixel_update_freq", type=int, default=None,
                 help="cirkd: pixels per class per image enqueued (default 16)")
        on_off(parser, "fix-pixel-enqueue", None,
               "cirkd: enqueue pixels of the right class (default off: the official behaviour)")
        add_flag(parser, "--group-size", dest="group_size", type=int, default=None,
                 help="cirkd: mini-batch relation over groups of this many images (default 0 = whole local batch)")
        add_flag(parser, "--minibatch-pooling", dest="minibatch_pooling", choices=POOLINGS, default=None,
                 help="cirkd: pooling before the mini-batch relation (default none; SegFormer students avg2x2)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "CIRKD":
        if teacher_info is None or "head_feat" not in teacher_info or "head_feat" not in student_info:
            raise ValueError("--kd-method cirkd needs a teacher and 'head_feat' outputs from both networks")
        num_classes = int(args.num_classes)
        lambda_kd, temperature = resolve_kd(args)
        memory_default = memory_weight_default(getattr(args, "dataset", ""))
        segformer = str(getattr(args, "student_model", "") or "").startswith("segformer")
        pixel_contrast_total = pick(getattr(args, "pixel_contrast_size", None), 4096)
        region_contrast_total = pick(getattr(args, "region_contrast_size", None), 1024)
        if pixel_contrast_total < 0 or region_contrast_total < 0:
            raise ValueError("--pixel-contrast-size / --region-contrast-size must be >= 0")
        return cls(
            num_classes, student_info["head_feat"], teacher_info["head_feat"],
            lambda_kd=lambda_kd, kd_temperature=temperature,
            lambda_minibatch_pixel=pick(getattr(args, "lambda_minibatch_pixel", None), 1.0),
            lambda_memory_pixel=pick(getattr(args, "lambda_memory_pixel", None), memory_default),
            lambda_memory_region=pick(getattr(args, "lambda_memory_region", None), memory_default),
            contrast_temperature=pick(getattr(args, "contrast_temperature", None), 0.1),
            contrast_kd_temperature=pick(getattr(args, "contrast_kd_temperature", None), 1.0),
            pixel_memory_size=pick(getattr(args, "pixel_memory_size", None), 2000 if segformer else 20000),
            region_memory_size=pick(getattr(args, "region_memory_size", None), 2000),
            pixel_contrast_size=pixel_contrast_total // num_classes + 1,
            region_contrast_size=region_contrast_total // num_classes + 1,
            pixel_update_freq=pick(getattr(args, "pixel_update_freq", None), 16),
            fix_pixel_enqueue=bool(pick(getattr(args, "fix_pixel_enqueue", None), False)),
            group_size=pick(getattr(args, "group_size", None), 0),
            pooling=pick(getattr(args, "minibatch_pooling", None), "avg2x2" if segformer else "none"),
            ignore_index=int(pick(getattr(args, "ignore_index", None), -1)))

    def raw_terms(self, ctx: StepContext) -> Dict[str, Tensor]:
        """The unweighted active terms of one step (the memory enqueue happens here)."""
        require_teacher(ctx, self.name)
        terms: Dict[str, Tensor] = {}
        if "kd" in self.weights:
            terms["kd"] = kd_loss(ctx.student.logits, ctx.teacher.logits, self.kd_temperature)
        if self.minibatch is not None:
            terms["minibatch_pixel"] = self.minibatch(ctx.student.head_feat, ctx.teacher.head_feat)
        if self.memory is not None:
            draws = ctx.extra.get("cirkd_draws") or {}
            generator = ctx.generator
            pixel, region = self.memory(
                ctx.student.head_feat, ctx.teacher.head_feat, ctx.labels,
                enqueue_pixel_pos=draws.get("enqueue_pixel_pos"), pixel_index=draws.get("pixel_index"),
                region_index=draws.get("region_index"), generator=generator)
            if pixel is not None:
                terms["memory_pixel"] = pixel
            if region is not None:
                terms["memory_region"] = region
        return terms

    def weight_terms(self, raw: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return {name: self.weights[name] * value for name, value in raw.items()}

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        return self.weight_terms(self.raw_terms(ctx))

    def describe(self) -> str:
        parts = ["%s=%g" % (name, self.weights[name]) for name in TERMS if name in self.weights]
        if self.memory is not None:
            parts.append(self.memory.extra_repr())
        if self.minibatch is not None:
            parts.append(self.minibatch.extra_repr())
        return "cirkd(%s)" % ", ".join(parts)
