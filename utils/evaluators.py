"""Evaluators (as detectron2's DatasetEvaluator): ``reset()``, ``process(pred, label)``, ``result()``.

``result()`` returns a dict of named figures (floats, or lists for per-class values); the training
loop picks its best checkpoint by ``evaluator.best_key`` (higher is better) and writes every scalar
figure to TensorBoard and ``results.json``. A method chooses its evaluator through
``DistillMethod.build_evaluator`` (e.g. an incremental method's old/new/hIoU evaluator).

    MIoUEvaluator(num_classes, ignore_index=-1, absent="zero")   -> {mIoU, pixAcc, mAcc, IoU, Acc}
"""
from __future__ import annotations

import abc
from typing import Dict, Optional

import torch

from .score import SegmentationMetric


class Evaluator(abc.ABC):
    """Base class: accumulate over an evaluation pass, then report named figures."""

    best_key: str = "mIoU"

    @abc.abstractmethod
    def reset(self, device: Optional[torch.device] = None) -> None:
        """Start a pass (accumulators on ``device``)."""

    @abc.abstractmethod
    def process(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        """``pred`` (N, H, W) class ids from the model's prediction rule; ``label`` (N, H, W)."""

    @abc.abstractmethod
    def result(self) -> Dict[str, object]:
        """Figures over everything processed since ``reset`` (all processes together)."""


class MIoUEvaluator(Evaluator):
    """Confusion-matrix figures; ``absent`` as ``SegmentationMetric.get`` ('zero' = CIRKD)."""

    best_key = "mIoU"

    def __init__(self, num_classes: int, ignore_index: int = -1, absent: str = "zero") -> None:
        if absent not in ("zero", "present"):
            raise ValueError("absent must be 'zero' or 'present', got %r" % absent)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.absent = absent
        self.metric: Optional[SegmentationMetric] = None

    def reset(self, device: Optional[torch.device] = None) -> None:
        self.metric = SegmentationMetric(self.num_classes, ignore_index=self.ignore_index,
                                         device=device or torch.device("cpu"))

    def process(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        if self.metric is None:
            self.reset(pred.device)
        self.metric.update(pred, label)

    def result(self) -> Dict[str, object]:
        if self.metric is None:
            self.reset()
        self.metric.all_reduce()
        scores = self.metric.get(absent=self.absent)
        return {"mIoU": float(scores["mIoU"]), "pixAcc": float(scores["pixAcc"]), "mAcc": float(scores["mAcc"]),
                "IoU": [float(x) for x in scores["IoU"]], "Acc": [float(x) for x in scores["Acc"]]}


def incremental_scores(confusion: torch.Tensor, old: list, new: list) -> Dict[str, object]:
    """DKD's figures (``utils/metric.py:Evaluator``) from a K x K confusion matrix (rows = ground truth):
    IoU_k = 100 CM_kk / (row_k + col_k - CM_kk - 1e-6) (an absent class counts 0), mIoU over old /
    new / all ids and hIoU = 2 old new / (old + new); without new classes only mIoU_all."""
    cm = confusion.double()
    diag = torch.diagonal(cm)
    iou = torch.nan_to_num(diag / (cm.sum(1) + cm.sum(0) - (diag + 1e-6)) * 100)
    out: Dict[str, object] = {"IoU": [float(x) for x in iou], "mIoU_all": float(iou[list(old) + list(new)].mean())}
    if old and new:
        miou_old, miou_new = float(iou[list(old)].mean()), float(iou[list(new)].mean())
        out.update({"mIoU_old": miou_old, "mIoU_new": miou_new,
                    "hIoU": 2 * miou_old * miou_new / (miou_old + miou_new) if miou_old + miou_new else 0.0})
    return out


class IncrementalEvaluator(Evaluator):
    """Old / new / all mIoU and hIoU over background + the seen classes (ids 0..K-1; other labels,
    e.g. void, are dropped). ``old`` = background and the earlier steps' classes, as DKD counts."""

    def __init__(self, num_classes: int, old: list, new: list, best_key: str = "hIoU") -> None:
        self.num_classes, self.old, self.new = int(num_classes), list(old), list(new)
        self.best_key = best_key if new else "mIoU_all"
        self.confusion: Optional[torch.Tensor] = None

    def reset(self, device: Optional[torch.device] = None) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.float64,
                                     device=device or torch.device("cpu"))

    def process(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        if self.confusion is None:
            self.reset(pred.device)
        valid = (label >= 0) & (label < self.num_classes)
        index = label[valid].long() * self.num_classes + pred[valid].long().clamp(0, self.num_classes - 1)
        self.confusion += torch.bincount(index, minlength=self.num_classes ** 2).view(
            self.num_classes, self.num_classes).to(self.confusion)

    def result(self) -> Dict[str, object]:
        if self.confusion is None:
            self.reset()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.confusion)
        out = incremental_scores(self.confusion, self.old, self.new)
        # the loop's figures are fractions like the other evaluators' (DKD prints percent)
        scaled = {k: (v / 100.0 if isinstance(v, float) else [x / 100.0 for x in v]) for k, v in out.items()}
        scaled["mIoU"] = scaled["mIoU_all"]
        return scaled
