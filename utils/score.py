"""Segmentation metrics from a confusion matrix accumulated on the device with ``torch.bincount``.

Confusion matrix ``cm[g, p]`` = number of pixels with ground truth g and prediction p (rows =
ground truth), over pixels whose target is not ``ignore_index``. From it:

    IoU_k  = cm[k,k] / (sum_p cm[k,p] + sum_g cm[g,k] - cm[k,k])
    Acc_k  = cm[k,k] / sum_p cm[k,p]            (per-class recall)
    pixAcc = trace(cm) / sum(cm)

Absent classes (``get(absent=...)``):
- ``'present'`` (default, mmseg convention): a class that appears neither in the ground truth nor
  in the predictions has IoU NaN and is left out of the mean; a class only predicted counts as 0.
  Acc_k is NaN for classes absent from the ground truth.
- ``'zero'`` (CIRKD ``SegmentationMetric``): every class counts, absent ones with 0, mIoU is the
  mean over all K classes (CIRKD's ``inter / (eps + union)``, eps = float64 machine epsilon).
All values are fractions in [0, 1].
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Union

import torch
import torch.distributed as dist

EPS = 2.220446049250313e-16


class SegmentationMetric:
    """``update(pred, target)`` per batch, ``all_reduce()`` once under DDP, then ``get()``."""

    def __init__(self, num_classes: int, ignore_index: int = -1,
                 device: Optional[Union[str, torch.device]] = None) -> None:
        if num_classes <= 0:
            raise ValueError("num_classes must be positive, got %d" % num_classes)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.confusion_matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64,
                                            device=self.device)

    def reset(self) -> None:
        self.confusion_matrix.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred``: class ids (N, H, W) or scores (N, C, H, W) (argmax over C); ``target``: (N, H, W)."""
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError("prediction shape %s does not match target shape %s (upsample the logits to "
                             "the label size first)" % (tuple(pred.shape), tuple(target.shape)))
        if pred.is_floating_point():
            raise ValueError("pred must hold class ids (integer) or per-class scores with one more dim")
        pred = pred.to(self.device).reshape(-1).long()
        target = target.to(self.device).reshape(-1).long()
        valid = target != self.ignore_index
        pred, target = pred[valid], target[valid]
        if target.numel() == 0:
            return
        k = self.num_classes
        if int(target.min()) < 0 or int(target.max()) >= k:
            bad = torch.unique(target[(target < 0) | (target >= k)])[:5].tolist()
            raise ValueError("target holds values %s outside 0..%d that are not the ignore index %d"
                             % (bad, k - 1, self.ignore_index))
        if int(pred.min()) < 0 or int(pred.max()) >= k:
            raise ValueError("prediction holds class ids outside 0..%d" % (k - 1))
        counts = torch.bincount(target * k + pred, minlength=k * k)
        self.confusion_matrix += counts.reshape(k, k)

    def all_reduce(self) -> None:
        """Sum the confusion matrices of all processes (no-op without torch.distributed); call once."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.confusion_matrix, op=dist.ReduceOp.SUM)

    def get(self, absent: str = "present") -> Dict[str, object]:
        """``pixAcc``, ``mIoU``, ``mAcc`` (floats), ``IoU``, ``Acc`` (lists), ``confusion_matrix`` (CPU)."""
        if absent not in ("present", "zero"):
            raise ValueError("absent must be 'present' (mmseg) or 'zero' (CIRKD), got %r" % (absent,))
        cm = self.confusion_matrix.detach().to("cpu", torch.float64)
        inter = torch.diagonal(cm)
        gt_area = cm.sum(1)
        pred_area = cm.sum(0)
        union = gt_area + pred_area - inter
        total = cm.sum()
        if absent == "zero":
            iou = inter / (EPS + union)
            acc = inter / (EPS + gt_area)
            pix_acc = float(inter.sum() / (EPS + total))
            miou, macc = float(iou.mean()), float(acc.mean())
        else:
            iou = torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, math.nan))
            acc = torch.where(gt_area > 0, inter / gt_area.clamp(min=1), torch.full_like(inter, math.nan))
            pix_acc = float(inter.sum() / total) if total > 0 else math.nan
            miou = float(torch.nanmean(iou)) if bool((union > 0).any()) else math.nan
            macc = float(torch.nanmean(acc)) if bool((gt_area > 0).any()) else math.nan
        return {"pixAcc": pix_acc, "mIoU": miou, "mAcc": macc, "IoU": iou.tolist(), "Acc": acc.tolist(),
                "confusion_matrix": self.confusion_matrix.detach().cpu().clone()}
