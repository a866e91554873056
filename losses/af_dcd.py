"""Af-DCD: Augmentation-free Dense Contrastive Distillation.

Paper: J. Fan, C. Li, X. Liu, M. Song, A. Yao, "Augmentation-free Dense Contrastive Knowledge
Distillation for Efficient Semantic Segmentation", NeurIPS 2023 (arXiv 2312.04168).
Official code: OSVAI/Af-DCD@5b086a7 losses/ocmgd.py:OmniContrastiveFeatureLoss (+ EnhancedProjector),
losses/kd.py:CriterionKD, train_ocmgd.py, train_scripts/*/*.sh.

On the student's last backbone stage ``c4`` (Cs channels) and the teacher's ``c4`` (Ct channels):

    A = align(S_c4)                      1x1 conv Cs->Ct (identity when Cs == Ct)
    keep ~ 1[u <= 1 - mask_ratio]        u ~ U[0,1) of shape B x 1 x H x W (or a fixed centre mask)
    F = proj(A * keep)                   two 3x3 convs (or the "enhanced" 4-conv projector)
    L_fd  = sum_{b,c,y,x} (F - T_c4)^2 / B
    P, Q  = maxpool_pool(F), maxpool_pool(T_c4)   (or a top-left crop, the official CamVid branch)
    cut P, Q into ph x pw patches and the channels into M groups of Ct/M; anchors a = (n, k)
    s(a, a') = -||p_a - q_a'||_1 / tau;  negatives of a: every a' = (n', k') of the patch with k' != k
    L_ctr = sum_a -log_softmax_{a' in {a} + negatives}(s(a, .))[a] / (B * H' * W')
    L = lambda_kd * KD_T(z_s, z_t) + lambda_fd * L_fd + lambda_ctr * L_ctr      (+ the task loss)

The learnable ``align`` and ``proj`` are trained with the student (one SGD optimizer); their gradients
are clipped to a global L2 norm of 15 before every step (``before_optimizer_step``).

Differences from the official code (all intentional):
- Cs == Ct: identity alignment (the official module has no ``align`` then and crashes).
- Real on/off flags ``--rand-mask/--no-rand-mask`` and ``--enhance-projector/--no-enhance-projector``
  (the official ``type=bool`` turns any string, "False" included, into True).
- The random mask is drawn from ``keep_mask`` (injected), ``ctx.generator`` or the global RNG.
- The CamVid branch (``dataset == 'camvid'``: crop the map to [:44, :44], no pooling) is the general
  option ``contrast_crop`` (44 resolved from ``--dataset camvid``; ``--contrast-crop`` overrides).
- tau, M, pool and patch size are CLI flags (constructor-only officially). ``--afdcd-variant``:
  ``omni`` (official), ``channel`` (patch 1x1, the paper's channel contrasting) and ``spatial`` (our
  extension: whole Ct vectors, M = 1, negatives = the other positions n' != n of the patch; with the
  official code M = 1 gives no negatives and L_ctr = 0). No official numbers exist for ``spatial``.
- A contrast map that the patch grid does not tile, or Ct % M != 0, gives a clear error (officially a
  view() crash). Pascal Context (not in the paper) uses the VOC weights.
- Losses are computed in float32 with autocast disabled (or float64 when given float64); the
  anchor loss is -log_softmax at the positive over a masked row instead of gathering positives and
  negatives into a new tensor (same value, and the softmax as exact as the official CE's).
- The contrastive scores (L1 distances / tau, ~1e3) and their softmax are computed in float64 by
  default (``--contrast-precision float32`` for the official dtype): a float32 score of that size
  carries an absolute error of ~1e-4, which every softmax weight and so every gradient inherits.
  The term costs about 1.4x its float32 time (0.3 s of a ~40 s CPU step at 512x1024, batch 2).
- ``align`` (1x1) and the mask are folded into the projector's first 3x3 conv
  (``af_dcd_projector.folded_masked_conv``) whenever that is cheaper (9 Cs < Cs + 9 Ct, e.g. 512 -> 2048):
  the conv reads Cs instead of Ct channels and the Ct-channel aligned map is never built. Same value
  and gradients (sums in another order); ``tests/naive_losses.py`` keeps the direct form.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .af_dcd_projector import EnhancedProjector, folded_masked_conv, folding_pays, plain_projector
from .base import ChannelInfo, DistillMethod, StepContext, add_flag, on_off, pick
from .registry import register
from .common import add_kd_args, as_float, kd_loss, require_teacher, resolve_kd

# dataset -> (lambda_kd, lambda_fd, lambda_ctr), from the official train_scripts.
DATASET_WEIGHTS: Dict[str, Tuple[float, float, float]] = {
    "citys": (1.0, 2e-6, 0.005),
    "voc": (1.0, 1e-6, 0.005),
    "camvid": (1.0, 8e-6, 0.01),
    "ade20k": (0.5, 1e-6, 0.04),
    "coco_stuff_164k": (0.5, 5e-6, 0.005),
    "pascal_context": (1.0, 1e-6, 0.005),   # not in the paper: VOC's weights
}
CAMVID_CONTRAST_CROP = 44
PRECISIONS = {"float64": torch.float64, "float32": None}
VARIANTS = ("omni", "channel", "spatial")


def centre_keep_mask(batch: int, height: int, width: int, device=None, dtype=torch.float32) -> Tensor:
    """The official ``rand_mask=False`` mask: 1 everywhere except the central third (rows and cols)."""
    keep = torch.ones(batch, 1, height, width, device=device, dtype=dtype)
    keep[:, :, height // 3:2 * height // 3, width // 3:2 * width // 3] = 0
    return keep


def keep_from_uniform(uniform: Tensor, mask_ratio: float) -> Tensor:
    """keep = 1[u <= 1 - mask_ratio] (the official ``where(u > 1 - ratio, 0, 1)``)."""
    return (uniform <= 1 - mask_ratio).to(torch.float32)


def reduce_for_contrast(feat: Tensor, pool_size: int, contrast_crop: Optional[int]) -> Tensor:
    """Top-left crop (official CamVid branch, no pooling) or max-pool kernel = stride = pool_size."""
    if contrast_crop:
        return feat[:, :, :contrast_crop, :contrast_crop]
    if pool_size > 0:
        return F.max_pool2d(feat, pool_size)
    return feat


def to_anchors(feat: Tensor, patch_size: Sequence[int], num_groups: int) -> Tensor:
    """(B, C, H, W) -> (B * patches, ph*pw*M, C/M); anchor index = position n * M + group k."""
    batch, channels, height, width = feat.shape
    ph, pw = patch_size
    x = feat.reshape(batch, channels, height // ph, ph, width // pw, pw)
    x = x.permute(0, 2, 4, 3, 5, 1)   # B, patch row, patch col, i, j, C
    return x.reshape(-1, ph * pw * num_groups, channels // num_groups)


def omni_contrastive_loss(pred: Tensor, target: Tensor, patch_size: Sequence[int], num_groups: int,
                          tau: float, variant: str = "omni", compute_dtype: Optional[torch.dtype] = None) -> Tensor:
    """Sum over anchors of the contrastive cross-entropy, divided by B * H * W of the given maps.

    ``omni``/``channel``: negatives of (n, k) are all (n', k') of the patch with k' != k.
    ``spatial`` (M must be 1): negatives of position n are all other positions n' != n of the patch.
    ``compute_dtype`` (e.g. float64): the scores and the softmax are computed in it when it is wider
    than the inputs, and the loss is returned in the inputs' dtype.
    """
    out_dtype = pred.dtype
    if compute_dtype is not None and torch.finfo(compute_dtype).bits > torch.finfo(pred.dtype).bits:
        pred, target = pred.to(compute_dtype), target.to(compute_dtype)
    batch, channels, height, width = pred.shape
    ph, pw = patch_size
    if height % ph or width % pw:
        raise ValueError("af_dcd: the contrast map is %dx%d, not divisible by --patch-size %d %d; change "
                         "--pool-size/--patch-size/--contrast-crop or the crop size" % (height, width, ph, pw))
    if channels % num_groups:
        raise ValueError("af_dcd: teacher channels %d not divisible by --num-groups %d" % (channels, num_groups))
    anchors_s = to_anchors(pred, patch_size, num_groups)
    anchors_t = to_anchors(target, patch_size, num_groups)
    scores = -torch.cdist(anchors_s, anchors_t, p=1) / tau          # (patches, A, A)
    num_anchors = scores.shape[-1]
    index = torch.arange(num_anchors, device=scores.device)
    if variant == "spatial":
        # M = 1: every other position of the patch is a negative, so the whole row takes part.
        allowed = torch.ones(num_anchors, num_anchors, dtype=torch.bool, device=scores.device)
    else:
        group = index % num_groups
        allowed = (group[:, None] != group[None, :]) | torch.eye(num_anchors, dtype=torch.bool,
                                                                 device=scores.device)
    masked = scores.masked_fill(~allowed, float("-inf"))
    # -log_softmax at the positive, as the official cross-entropy: log_softmax shifts by the row max
    # before exponentiating, so with |scores| ~ 1e3 (L1 / tau) the float32 softmax weights keep full
    # precision (logsumexp(row) - positive would lose ~1e-4 of it in the subtraction).
    per_anchor = -F.log_softmax(masked, dim=-1).diagonal(dim1=-2, dim2=-1)
    return (per_anchor.sum() / (batch * height * width)).to(out_dtype)


@register("af_dcd")
class AfDCD(DistillMethod):
    """Logit KD + masked feature mimicking + omni-contrastive loss on c4 (see the module docstring)."""

    student_stages = True   # reads ``c4`` by name

    def __init__(self, student_channels: int, teacher_channels: int, lambda_kd: float = 1.0,
                 lambda_fd: float = 2e-6, lambda_ctr: float = 0.005, kd_temperature: float = 1.0,
                 tau: float = 0.07, num_groups: int = 16, pool_size: int = 4,
                 patch_size: Sequence[int] = (4, 4), rand_mask: bool = True, mask_ratio: float = 0.75,
                 enhance_projector: bool = False, contrast_crop: Optional[int] = None,
                 variant: str = "omni", max_grad_norm: float = 15.0, contrast_precision: str = "float64") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError("--afdcd-variant must be one of %s (got %r)" % ("/".join(VARIANTS), variant))
        patch_size = tuple(int(p) for p in patch_size)
        if len(patch_size) != 2 or min(patch_size) < 1:
            raise ValueError("--patch-size needs two positive ints H W (got %s)" % (patch_size,))
        if variant == "channel" and patch_size != (1, 1):
            raise ValueError("--afdcd-variant channel uses --patch-size 1 1 (got %s)" % (patch_size,))
        if variant == "spatial" and num_groups != 1:
            raise ValueError("--afdcd-variant spatial uses whole vectors: --num-groups must be 1 (got %d)"
                             % num_groups)
        if num_groups < 1 or teacher_channels % num_groups:
            raise ValueError("af_dcd: teacher c4 channels %d must be divisible by --num-groups %d"
                             % (teacher_channels, num_groups))
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError("--mask-ratio must be in [0, 1] (got %g)" % mask_ratio)
        if tau <= 0:
            raise ValueError("--contrast-tau must be > 0 (got %g)" % tau)
        self.lambda_kd, self.lambda_fd, self.lambda_ctr = float(lambda_kd), float(lambda_fd), float(lambda_ctr)
        self.kd_temperature = float(kd_temperature)
        self.tau, self.num_groups, self.pool_size = float(tau), int(num_groups), int(pool_size)
        self.patch_size = patch_size
        self.rand_mask, self.mask_ratio = bool(rand_mask), float(mask_ratio)
        self.enhance_projector = bool(enhance_projector)
        self.contrast_crop = int(contrast_crop) if contrast_crop else None
        self.variant = variant
        self.max_grad_norm = float(max_grad_norm)
        if contrast_precision not in PRECISIONS:
            raise ValueError("--contrast-precision must be one of %s (got %r)" % ("/".join(PRECISIONS), contrast_precision))
        self.contrast_precision = contrast_precision
        self.contrast_dtype = PRECISIONS[contrast_precision]
        if student_channels == teacher_channels:
            self.align: nn.Module = nn.Identity()
        else:
            self.align = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
        self.proj = EnhancedProjector(teacher_channels) if enhance_projector else plain_projector(teacher_channels)
        # The 1x1 align and the mask are folded into the projector's first conv where that is cheaper.
        self.fold_align = isinstance(self.align, nn.Conv2d) and folding_pays(student_channels, teacher_channels)

    # ---- CLI -------------------------------------------------------------------------------
    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_kd_args(parser)
        add_flag(parser, "--lambda-fd", dest="lambda_fd", type=float, default=None,
                 help="af_dcd: weight of the masked feature-mimicking loss (default per dataset, citys 2e-6)")
        add_flag(parser, "--lambda-ctr", dest="lambda_ctr", type=float, default=None,
                 help="af_dcd: weight of the omni-contrastive loss (default per dataset, citys 0.005)")
        add_flag(parser, "--contrast-tau", dest="contrast_tau", type=float, default=None,
                 help="af_dcd: temperature of the L1 contrastive scores (default 0.07)")
        add_flag(parser, "--num-groups", dest="num_groups", type=int, default=None,
                 help="af_dcd: channel groups M (default 16; 1 for --afdcd-variant spatial)")
        add_flag(parser, "--pool-size", dest="pool_size", type=int, default=None,
                 help="af_dcd: max-pool size before contrasting, 0 = none (default 4)")
        add_flag(parser, "--patch-size", dest="patch_size", type=int, nargs=2, default=None, metavar=("H", "W"),
                 help="af_dcd: contrast patch size (default 4 4; 1 1 for the channel variant)")
        add_flag(parser, "--contrast-crop", dest="contrast_crop", type=int, default=None,
                 help="af_dcd: crop the map to [:N, :N] instead of pooling (default 44 on camvid, else 0 = off)")
        add_flag(parser, "--mask-ratio", dest="mask_ratio", type=float, default=None,
                 help="af_dcd: fraction of c4 positions masked (default 0.75)")
        on_off(parser, "rand-mask", None, "af_dcd: random mask (default on); --no-rand-mask = centre mask")
        on_off(parser, "enhance-projector", None, "af_dcd: 4-conv enhanced projector (default off)")
        add_flag(parser, "--contrast-precision", dest="contrast_precision", choices=sorted(PRECISIONS), default=None,
                 help="af_dcd: dtype of the contrastive scores and softmax (default float64: float32 scores of "
                      "size |L1|/tau ~ 1e3 lose ~1e-4 of every gradient; float32 is ~0.3 s faster per CPU step)")
        add_flag(parser, "--afdcd-variant", dest="afdcd_variant", choices=VARIANTS, default=None,
                 help="af_dcd: omni (official), channel (patch 1x1) or spatial (M=1, negatives = other positions)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "AfDCD":
        if not teacher_info or "c4" not in teacher_info or "c4" not in student_info:
            raise ValueError("af_dcd needs the 'c4' feature of student and teacher (models give %s / %s)"
                             % (sorted(student_info), sorted(teacher_info or {})))
        dataset = getattr(args, "dataset", "citys")
        if dataset not in DATASET_WEIGHTS:
            raise ValueError("af_dcd: no defaults for --dataset %r (known: %s)" % (dataset, ", ".join(DATASET_WEIGHTS)))
        kd_weight, fd_weight, ctr_weight = DATASET_WEIGHTS[dataset]
        lambda_kd, temperature = resolve_kd(args, default_weight=kd_weight)
        variant = pick(getattr(args, "afdcd_variant", None), "omni")
        crop = pick(getattr(args, "contrast_crop", None), CAMVID_CONTRAST_CROP if dataset == "camvid" else 0)
        return cls(student_info["c4"], teacher_info["c4"],
                   lambda_kd=lambda_kd,
                   lambda_fd=pick(getattr(args, "lambda_fd", None), fd_weight),
                   lambda_ctr=pick(getattr(args, "lambda_ctr", None), ctr_weight),
                   kd_temperature=temperature,
                   tau=pick(getattr(args, "contrast_tau", None), 0.07),
                   num_groups=pick(getattr(args, "num_groups", None), 1 if variant == "spatial" else 16),
                   pool_size=pick(getattr(args, "pool_size", None), 4),
                   patch_size=pick(getattr(args, "patch_size", None), (1, 1) if variant == "channel" else (4, 4)),
                   rand_mask=pick(getattr(args, "rand_mask", None), True),
                   mask_ratio=pick(getattr(args, "mask_ratio", None), 0.75),
                   enhance_projector=pick(getattr(args, "enhance_projector", None), False),
                   contrast_crop=crop, variant=variant,
                   contrast_precision=pick(getattr(args, "contrast_precision", None), "float64"))

    @classmethod
    def check_setup(cls, args: argparse.Namespace) -> None:
        """The crop's c4 map (output stride 8), pooled or cropped, must tile into the patch grid."""
        crop = getattr(args, "crop_size", None)
        if not crop:
            return
        variant = pick(getattr(args, "afdcd_variant", None), "omni")
        patch = tuple(pick(getattr(args, "patch_size", None), (1, 1) if variant == "channel" else (4, 4)))
        pool = int(pick(getattr(args, "pool_size", None), 4))
        dataset = getattr(args, "dataset", "citys")
        contrast_crop = pick(getattr(args, "contrast_crop", None), CAMVID_CONTRAST_CROP if dataset == "camvid" else 0)
        feature = [-(-int(c) // 8) for c in crop]
        if contrast_crop:
            reduced = [min(int(contrast_crop), f) for f in feature]
        else:
            reduced = [f // pool for f in feature] if pool > 0 else feature
        if min(reduced) < 1 or reduced[0] % patch[0] or reduced[1] % patch[1]:
            raise ValueError("--crop-size %dx%d gives a %dx%d c4 map, %dx%d after %s, which --patch-size %d %d "
                             "does not tile; use a crop whose c4 map (crop / 8) %s is a multiple of %dx%d, or "
                             "change --pool-size/--patch-size" % (
                                 crop[0], crop[1], feature[0], feature[1], reduced[0], reduced[1],
                                 ("the %d crop" % contrast_crop) if contrast_crop else ("pooling by %d" % pool),
                                 patch[0], patch[1], "" if contrast_crop else "/ pool",
                                 patch[0], patch[1]))

    # ---- loss --------------------------------------------------------------------------------
    def make_keep_mask(self, batch: int, height: int, width: int, device: torch.device,
                       generator: Optional[torch.Generator] = None) -> Tensor:
        """B x 1 x H x W keep mask (1 = keep): random (u <= 1 - ratio) or the fixed centre mask."""
        if not self.rand_mask:
            return centre_keep_mask(batch, height, width, device=device)
        # Drawn where the generator lives (CPU for the global RNG, as the official code does).
        draw_device = generator.device if generator is not None else torch.device("cpu")
        uniform = torch.rand(batch, 1, height, width, generator=generator, device=draw_device)
        return keep_from_uniform(uniform, self.mask_ratio).to(device)

    def feature_losses(self, student_feat: Tensor, teacher_feat: Tensor, keep_mask: Optional[Tensor] = None,
                       generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        """Unweighted (L_fd, L_ctr) of the student/teacher c4 maps."""
        if student_feat.shape[0] != teacher_feat.shape[0] or student_feat.shape[-2:] != teacher_feat.shape[-2:]:
            raise ValueError("af_dcd: student c4 %s and teacher c4 %s need the same batch and spatial size"
                             % (tuple(student_feat.shape), tuple(teacher_feat.shape)))
        student_feat = as_float(student_feat)
        teacher_feat = as_float(teacher_feat.detach()).to(student_feat.dtype)
        batch, _, height, width = teacher_feat.shape
        if keep_mask is None:
            keep_mask = self.make_keep_mask(batch, height, width, student_feat.device, generator)
        elif tuple(keep_mask.shape) != (batch, 1, height, width):
            raise ValueError("af_dcd: keep_mask must be %s, got %s"
                             % ((batch, 1, height, width), tuple(keep_mask.shape)))
        keep_mask = keep_mask.to(student_feat.dtype)
        if self.fold_align:
            first = folded_masked_conv(self.align, self.proj.first_conv, student_feat, keep_mask)
        else:
            first = self.proj.first_conv(self.align(student_feat) * keep_mask)
        regenerated = self.proj.after_first_conv(first)
        fd = F.mse_loss(regenerated, teacher_feat, reduction="sum") / batch
        ctr = omni_contrastive_loss(reduce_for_contrast(regenerated, self.pool_size, self.contrast_crop),
                                    reduce_for_contrast(teacher_feat, self.pool_size, self.contrast_crop),
                                    self.patch_size, self.num_groups, self.tau, self.variant,
                                    compute_dtype=self.contrast_dtype)
        return fd, ctr

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        student_c4, teacher_c4 = ctx.student.get("c4"), ctx.teacher.get("c4")
        if student_c4 is None or teacher_c4 is None:
            raise ValueError("af_dcd needs 'c4' in the student and teacher outputs")
        generator = ctx.generator
        keep_mask = ctx.extra.get("afdcd_keep_mask")
        # The projector runs in float32 even under AMP (bf16 convs would change the sums).
        with torch.autocast(device_type=student_c4.device.type, enabled=False):
            fd, ctr = self.feature_losses(student_c4, teacher_c4, keep_mask=keep_mask, generator=generator)
            terms = {"fd": self.lambda_fd * fd, "ctr": self.lambda_ctr * ctr}
            if self.lambda_kd != 0:
                terms["kd"] = self.lambda_kd * kd_loss(ctx.student.logits, ctx.teacher.logits, self.kd_temperature)
        return terms

    def before_optimizer_step(self) -> None:
        params = [p for p in self.parameters() if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, max_norm=self.max_grad_norm, norm_type=2)

    def describe(self) -> str:
        return ("af_dcd(variant=%s, lambda kd/fd/ctr=%g/%g/%g, T=%g, tau=%g, M=%d, pool=%d, patch=%dx%d, crop=%s, "
                "mask=%s %.2f, projector=%s)" % (
                    self.variant, self.lambda_kd, self.lambda_fd, self.lambda_ctr, self.kd_temperature, self.tau,
                    self.num_groups, self.pool_size, self.patch_size[0], self.patch_size[1], self.contrast_crop,
                    "random" if self.rand_mask else "centre", self.mask_ratio,
                    "enhanced" if self.enhance_projector else "plain"))
