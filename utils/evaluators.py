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
