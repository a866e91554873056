"""Task loss: per-pixel cross-entropy with ignore index, plus the 0.4-weighted aux head.

Official: winycg/CIRKD@2d8ad0f losses/task.py:SegCrossEntropyLoss (byte-identical in
OSVAI/Af-DCD@5b086a7) and the weighting in its train scripts.

    U = bilinear(Z, label size, align_corners=True)
    CE = mean over non-ignored pixels of -log softmax(U)[y]
    L_task = CE(Z_main, Y) + aux_weight * CE(Z_aux, Y)     (aux_weight 0.4)

Differences from the official code: ``aux_weight`` is a real argument (``train_baseline.py``
parsed ``--aux-weight`` but used the literal 0.4); a batch whose pixels are all ignored gives
0 instead of NaN (the loop would otherwise stop on a NaN loss for an empty crop).

OHEM CE (``--task-loss ohem``; CPS/MGD ``furnace/seg_opr/loss_opr.py:ProbOhemCrossEntropy2d``, the
MGD Cityscapes recipe): p = softmax(U)[y] of each valid pixel; if at least ``min_kept`` pixels are
valid, keep those with p <= max(thresh, the min_kept-th smallest p) and take the CE mean over the
kept ones, otherwise plain CE. ``min_kept`` counts pixels of the whole (per-process) batch.

The resize follows the network: ``align_corners`` comes from the student's model metadata (True
for the CIRKD family, False for mmseg-style models).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def upsample_to(logits: Tensor, size, align_corners: bool = True) -> Tensor:
    """Bilinear resize to ``size`` (H, W); align_corners=True is CIRKD's loss and eval."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align_corners)


def _float32(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class SegCrossEntropyLoss(nn.Module):
    def __init__(self, ignore_index: int = -1, align_corners: bool = True) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.align_corners = align_corners

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = upsample_to(logits, labels.shape[-2:], self.align_corners)
        valid = labels != self.ignore_index
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return F.cross_entropy(_float32(logits), labels.long(), ignore_index=self.ignore_index)


class OhemCrossEntropyLoss(SegCrossEntropyLoss):
    """CE over the hardest pixels (true-class probability <= the threshold, see the docstring)."""

    def __init__(self, ignore_index: int = -1, thresh: float = 0.7, min_kept: int = 100000,
                 align_corners: bool = True) -> None:
        super().__init__(ignore_index, align_corners)
        if not 0.0 < thresh <= 1.0 or min_kept < 0:
            raise ValueError("OHEM needs 0 < thresh <= 1 and min_kept >= 0, got %g, %d" % (thresh, min_kept))
        self.thresh = float(thresh)
        self.min_kept = int(min_kept)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = _float32(upsample_to(logits, labels.shape[-2:], self.align_corners))
        valid = labels != self.ignore_index
        num_valid = int(valid.sum())
        if num_valid == 0:
            return logits.sum() * 0.0
        labels = labels.long()
        if num_valid >= self.min_kept:
            with torch.no_grad():
                prob = F.softmax(logits, dim=1)
                true_prob = prob.gather(1, labels.masked_fill(~valid, 0).unsqueeze(1)).squeeze(1)[valid]
                threshold = self.thresh
                if self.min_kept > 0:
                    kth = torch.kthvalue(true_prob, min(num_valid, self.min_kept)).values
                    threshold = max(threshold, float(kth))
                keep = torch.zeros_like(valid)
                keep[valid] = true_prob <= threshold
            labels = torch.where(keep, labels, torch.full_like(labels, self.ignore_index))
        return F.cross_entropy(logits, labels, ignore_index=self.ignore_index)


class TaskLoss:
    """The supervised criterion of a run: ``TaskLoss(...)(student_outputs, labels) -> {task, task_aux}``."""

    def __init__(self, kind: str = "ce", aux_weight: float = 0.4, ignore_index: int = -1,
                 align_corners: bool = True, ohem_thresh: float = 0.7, ohem_min_kept: int = 100000) -> None:
        if kind == "ce":
            self.criterion: SegCrossEntropyLoss = SegCrossEntropyLoss(ignore_index, align_corners)
        elif kind == "ohem":
            self.criterion = OhemCrossEntropyLoss(ignore_index, ohem_thresh, ohem_min_kept, align_corners)
        else:
            raise ValueError("--task-loss must be 'ce' or 'ohem', got %r" % kind)
        self.kind = kind
        self.aux_weight = float(aux_weight)

    def __call__(self, outputs, labels: Tensor) -> Dict[str, Tensor]:
        return task_loss(outputs, labels, self.aux_weight, criterion=self.criterion)

    def __repr__(self) -> str:
        return "TaskLoss(%s, aux_weight=%g)" % (self.kind, self.aux_weight)


def task_loss(outputs, labels: Tensor, aux_weight: float = 0.4, ignore_index: int = -1,
              criterion: Optional[SegCrossEntropyLoss] = None) -> Dict[str, Tensor]:
    """{"task": CE(main)} plus {"task_aux": aux_weight * CE(aux)} when the model has an aux head."""
    criterion = criterion or SegCrossEntropyLoss(ignore_index)
    terms = {"task": criterion(outputs.logits if hasattr(outputs, "logits") else outputs[0], labels)}
    aux = outputs.get("aux_logits") if hasattr(outputs, "get") else None
    if aux is not None and aux_weight:
        terms["task_aux"] = aux_weight * criterion(aux, labels)
    return terms
