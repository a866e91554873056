"""Task loss: per-pixel cross-entropy with ignore index, plus the 0.4-weighted aux head.

Official: winycg/CIRKD@2d8ad0f losses/task.py:SegCrossEntropyLoss (byte-identical in
OSVAI/Af-DCD@5b086a7) and the weighting in its train scripts.

    U = bilinear(Z, label size, align_corners=True)
    CE = mean over non-ignored pixels of -log softmax(U)[y]
    L_task = CE(Z_main, Y) + aux_weight * CE(Z_aux, Y)     (aux_weight 0.4)

Differences from the official code: ``aux_weight`` is a real argument (``train_baseline.py``
parsed ``--aux-weight`` but used the literal 0.4); a batch whose pixels are all ignored gives
0 instead of NaN (the loop would otherwise stop on a NaN loss for an empty crop).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def upsample_to(logits: Tensor, size) -> Tensor:
    """Bilinear resize to ``size`` (H, W) with align_corners=True, as CIRKD's loss and eval do."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)


class SegCrossEntropyLoss(nn.Module):
    def __init__(self, ignore_index: int = -1) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = upsample_to(logits, labels.shape[-2:])
        valid = labels != self.ignore_index
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits,
                               labels.long(), ignore_index=self.ignore_index)


def task_loss(outputs, labels: Tensor, aux_weight: float = 0.4, ignore_index: int = -1,
              criterion: Optional[SegCrossEntropyLoss] = None) -> Dict[str, Tensor]:
    """{"task": CE(main)} plus {"task_aux": aux_weight * CE(aux)} when the model has an aux head."""
    criterion = criterion or SegCrossEntropyLoss(ignore_index)
    terms = {"task": criterion(outputs.logits if hasattr(outputs, "logits") else outputs[0], labels)}
    aux = outputs.get("aux_logits") if hasattr(outputs, "get") else None
    if aux is not None and aux_weight:
        terms["task_aux"] = aux_weight * criterion(aux, labels)
    return terms
