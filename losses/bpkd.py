"""BPKD: Boundary Privileged Knowledge Distillation (edge + body distillation of the logits).

Paper: L. Liu, Z. Wang, M. H. Phan, B. Zhang, J. Ge, Y. Liu, "BPKD: Boundary Privileged Knowledge
Distillation for Semantic Segmentation", WACV 2024 (arXiv 2306.08075).
Official repo: AkideLiu/BPKD@83014fa holds evaluation code only (no loss or training code; issue #3).
This implementation follows the paper's Fig. 3 (shipped in
the repo as resources/image-20230616azcXmW.png), the abstract, and mmrazor 0.x ChannelWiseDivergence.

With one-hot labels O (B x C x H x W; pixels outside [0, C), e.g. ignore, are all-zero), decode-head
logits S, T (B x C x h x w; T detached) and a k x k window clipped at the border:

    E = maxpool_k(O) - minpool_k(O)                 per-class edge band at label resolution
    M = AvgPool(E) to (h, w)                        soft edge mask ("Edge Mask [1..0]")
    Z_E = Z * M,  Z_B = Z * (1 - M)                 for Z in {S, T}
    phi_{b,i} = tau_E^2 sum_c p^T (log p^T - log p^S),  p = softmax_c(Z_E / tau_E)
    L_E = (1/B) sum_b sum_{c: n_bc > 0} alpha_c (sum_i phi_{b,i} M_{b,c,i}) / n_bc,  n_bc = #{i: M_bci > 0}
          ("pixel" reduction: (1/B) sum_b [sum_c alpha_c sum_i phi M] / [sum_c n_bc])
    L_B = tau_B^2 / (B C) sum_{b,c,i} q^T (log q^T - log q^S),  q = softmax over h*w of Z_B / tau_B
    L = lambda_E L_E + lambda_B L_B        (defaults 50, 20; alpha 2; k 7; tau_E = tau_B = 1)

The mask downsampling factor (8 for PSPNet/DeepLabV3, 4 for DeepLabV3+/HRNet) follows from the
label and logit sizes; non-divisible sizes use adaptive average pooling.

Divergences / choices (no official code exists; see the card's Divergences):
- Edges come from the ground truth by a per-class morphological gradient with a border-clipped
  window; ignore pixels are "no class" (class/ignore boundaries are edges), in both losses.
- Masking multiplies the logits (masked logits act as 0 in the softmaxes, not as excluded).
- tau_E and tau_B are separate (the paper's value could not be read; tau = 1 recommended).
- The framework's ignore value is -1 (mmseg: 255); any label outside [0, C) is no class, so both work.
- The loss runs in float32 with autocast disabled (float64 when given float64); the one-hot
  morphology is done in chunks of classes to bound memory at C = 150.
- Teacher logits of another size are resized bilinearly (align_corners=False) to the student's.
- The method distils ``logits`` (the main head) only; the aux head keeps its task CE.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick
from .registry import register
from .common import as_float, require_teacher

EDGE_REDUCTIONS = ("class", "pixel")
_CLASS_CHUNK = 8   # classes per one-hot chunk (memory: B x 8 x H x W floats at a time)


def edge_mask(labels: Tensor, num_classes: int, logit_size: Sequence[int], kernel_size: int = 7,
              ignore_index: int = 255, dtype: torch.dtype = torch.float32) -> Tensor:
    """Soft per-class edge mask M (B x C x h x w) in [0, 1] from a label map (B x H x W)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError("bpkd: the edge kernel size must be a positive odd number (got %d)" % kernel_size)
    if labels.dim() != 3:
        raise ValueError("bpkd: labels must be B x H x W, got %s" % (tuple(labels.shape),))
    labels = labels.long()
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    height, width = labels.shape[-2:]
    out_h, out_w = int(logit_size[0]), int(logit_size[1])
    pad = kernel_size // 2
    masks = []
    for start in range(0, num_classes, _CLASS_CHUNK):
        classes = torch.arange(start, min(start + _CLASS_CHUNK, num_classes), device=labels.device)
        onehot = ((labels[:, None] == classes[None, :, None, None]) & valid[:, None]).to(dtype)
        # max_pool2d pads with -inf, so both the dilation and the erosion use a border-clipped window.
        dilated = F.max_pool2d(onehot, kernel_size, stride=1, padding=pad)
        eroded = -F.max_pool2d(-onehot, kernel_size, stride=1, padding=pad)
        edges = dilated - eroded
        if height % out_h == 0 and width % out_w == 0:
            masks.append(F.avg_pool2d(edges, (height // out_h, width // out_w)))
        else:
            masks.append(F.adaptive_avg_pool2d(edges, (out_h, out_w)))
    return torch.cat(masks, dim=1)


def bpkd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, kernel_size: int = 7,
              alpha: Union[float, Sequence[float], Tensor] = 2.0, tau_edge: float = 1.0, tau_body: float = 1.0,
              lambda_edge: float = 50.0, lambda_body: float = 20.0, edge_reduction: str = "class",
              ignore_index: int = 255) -> Dict[str, Tensor]:
    """BPKD terms: loss_edge, loss_body (unweighted), weighted_edge, weighted_body, total, edge_mask."""
    if edge_reduction not in EDGE_REDUCTIONS:
        raise ValueError("bpkd: edge_reduction must be 'class' or 'pixel' (got %r)" % edge_reduction)
    if tau_edge <= 0 or tau_body <= 0:
        raise ValueError("bpkd: temperatures must be > 0 (got %g, %g)" % (tau_edge, tau_body))
    student_logits = as_float(student_logits)
    teacher_logits = as_float(teacher_logits.detach()).to(student_logits.dtype)
    batch, num_classes, height, width = student_logits.shape
    if teacher_logits.shape[:2] != student_logits.shape[:2]:
        raise ValueError("bpkd: teacher logits %s and student logits %s differ in batch or classes"
                         % (tuple(teacher_logits.shape), tuple(student_logits.shape)))
    if teacher_logits.shape[-2:] != student_logits.shape[-2:]:
        teacher_logits = F.interpolate(teacher_logits, size=(height, width), mode="bilinear", align_corners=False)
    if labels.shape[0] != batch:
        raise ValueError("bpkd: %d label maps for %d logits" % (labels.shape[0], batch))

    mask = edge_mask(labels, num_classes, (height, width), kernel_size, ignore_index, student_logits.dtype)
    alpha_c = torch.as_tensor(alpha, dtype=student_logits.dtype, device=student_logits.device)
    if alpha_c.dim() == 0:
        alpha_c = alpha_c.expand(num_classes)
    elif alpha_c.numel() != num_classes:
        raise ValueError("bpkd: alpha has %d values for %d classes" % (alpha_c.numel(), num_classes))

    # Edge loss: pixel-wise KL over classes of the edge-masked logits, pooled per class by the mask.
    log_p_s = F.log_softmax(student_logits * mask / tau_edge, dim=1)
    log_p_t = F.log_softmax(teacher_logits * mask / tau_edge, dim=1)
    kl_pixel = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1, keepdim=True) * tau_edge ** 2   # B,1,h,w
    per_class = (kl_pixel * mask).sum(dim=(2, 3))                                              # B,C
    count = (mask > 0).sum(dim=(2, 3)).to(per_class.dtype)                                     # B,C
    if edge_reduction == "class":
        loss_edge = (alpha_c * per_class / count.clamp(min=1)).sum() / batch
    else:
        per_image = (alpha_c * per_class).sum(dim=1) / count.sum(dim=1).clamp(min=1)
        loss_edge = per_image.sum() / batch

    # Body loss: channel-wise distillation (spatial softmax per class) of the body-masked logits.
    body = 1 - mask
    log_q_s = F.log_softmax((student_logits * body / tau_body).reshape(batch, num_classes, -1), dim=2)
    log_q_t = F.log_softmax((teacher_logits * body / tau_body).reshape(batch, num_classes, -1), dim=2)
    loss_body = (log_q_t.exp() * (log_q_t - log_q_s)).sum() * tau_body ** 2 / (batch * num_classes)

    weighted_edge, weighted_body = lambda_edge * loss_edge, lambda_body * loss_body
    return {"loss_edge": loss_edge, "loss_body": loss_body, "weighted_edge": weighted_edge,
            "weighted_body": weighted_body, "total": weighted_edge + weighted_body, "edge_mask": mask}


@register("bpkd")
class BPKD(DistillMethod):
    """``--kd-method bpkd``: lambda_edge * L_edge + lambda_body * L_body on the main-head logits."""

    def __init__(self, num_classes: int, lambda_edge: float = 50.0, lambda_body: float = 20.0,
                 alpha: Union[float, Sequence[float]] = 2.0, kernel_size: int = 7, tau_edge: float = 1.0,
                 tau_body: float = 1.0, edge_reduction: str = "class") -> None:
        super().__init__()
        if edge_reduction not in EDGE_REDUCTIONS:
            raise ValueError("--bpkd-edge-reduction must be 'class' or 'pixel' (got %r)" % edge_reduction)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError("--bpkd-kernel-size must be a positive odd number (got %d)" % kernel_size)
        if tau_edge <= 0 or tau_body <= 0:
            raise ValueError("--bpkd-tau-edge/--bpkd-tau-body must be > 0 (got %g, %g)" % (tau_edge, tau_body))
        if not isinstance(alpha, (int, float)):
            alpha = [float(a) for a in alpha]
            if len(alpha) == 1:
                alpha = alpha[0]
            elif len(alpha) != num_classes:
                raise ValueError("--bpkd-alpha: give one value or one per class (%d), got %d"
                                 % (num_classes, len(alpha)))
        self.num_classes = int(num_classes)
        self.lambda_edge, self.lambda_body = float(lambda_edge), float(lambda_body)
        self.alpha = alpha
        self.kernel_size, self.edge_reduction = int(kernel_size), edge_reduction
        self.tau_edge, self.tau_body = float(tau_edge), float(tau_body)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--bpkd-lambda-edge", dest="bpkd_lambda_edge", type=float, default=None,
                 help="bpkd: weight of the edge loss, 0 = off (default 50)")
        add_flag(parser, "--bpkd-lambda-body", dest="bpkd_lambda_body", type=float, default=None,
                 help="bpkd: weight of the body (CWD) loss, 0 = off (default 20)")
        add_flag(parser, "--bpkd-alpha", dest="bpkd_alpha", type=float, nargs="+", default=None,
                 help="bpkd: edge class weight alpha, one value or one per class (default 2.0)")
        add_flag(parser, "--bpkd-kernel-size", dest="bpkd_kernel_size", type=int, default=None,
                 help="bpkd: odd edge (trimap) kernel at label resolution (default 7)")
        add_flag(parser, "--bpkd-tau-edge", dest="bpkd_tau_edge", type=float, default=None,
                 help="bpkd: temperature of the edge KL (default 1.0)")
        add_flag(parser, "--bpkd-tau-body", dest="bpkd_tau_body", type=float, default=None,
                 help="bpkd: temperature of the body CWD (default 1.0)")
        add_flag(parser, "--bpkd-edge-reduction", dest="bpkd_edge_reduction", choices=EDGE_REDUCTIONS, default=None,
                 help="bpkd: 'class' = alpha/n_c per class (default), 'pixel' = one edge-pixel count per image")

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "BPKD":
        num_classes = getattr(args, "num_classes", None) or student_info.get("logits")
        if teacher_info and teacher_info.get("logits") not in (None, num_classes):
            raise ValueError("bpkd: teacher has %s classes, student %s" % (teacher_info.get("logits"), num_classes))
        return cls(num_classes,
                   lambda_edge=pick(getattr(args, "bpkd_lambda_edge", None), 50.0),
                   lambda_body=pick(getattr(args, "bpkd_lambda_body", None), 20.0),
                   alpha=pick(getattr(args, "bpkd_alpha", None), 2.0),
                   kernel_size=pick(getattr(args, "bpkd_kernel_size", None), 7),
                   tau_edge=pick(getattr(args, "bpkd_tau_edge", None), 1.0),
                   tau_body=pick(getattr(args, "bpkd_tau_body", None), 1.0),
                   edge_reduction=pick(getattr(args, "bpkd_edge_reduction", None), "class"))

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        student_logits = ctx.student.logits
        with torch.autocast(device_type=student_logits.device.type, enabled=False):
            out = bpkd_loss(student_logits, ctx.teacher.logits, ctx.labels, kernel_size=self.kernel_size,
                            alpha=self.alpha, tau_edge=self.tau_edge, tau_body=self.tau_body,
                            lambda_edge=self.lambda_edge, lambda_body=self.lambda_body,
                            edge_reduction=self.edge_reduction, ignore_index=ctx.ignore_index)
        terms = {}
        if self.lambda_edge != 0:
            terms["edge"] = out["weighted_edge"]
        if self.lambda_body != 0:
            terms["body"] = out["weighted_body"]
        return terms

    def describe(self) -> str:
        return "bpkd(lambda edge/body=%g/%g, alpha=%s, k=%d, tau edge/body=%g/%g, reduction=%s)" % (
            self.lambda_edge, self.lambda_body, self.alpha, self.kernel_size, self.tau_edge, self.tau_body,
            self.edge_reduction)
