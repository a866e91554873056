"""What ``DistillMethod.forward_networks`` receives: the networks of a run, ready to call.

``nets.student(x)`` runs the (DDP-wrapped) student under autocast; ``nets.teacher(i, x)`` runs
teacher ``i`` under autocast without grad. Each network adapts the pipeline's tensor to its own
input normalisation itself (a forward pre-hook, models/meta.py), so a method only chooses WHICH
images go through WHICH network.
"""
from __future__ import annotations

from typing import Any, List, Optional

import torch
from torch import Tensor, nn

from utils.evaluation import autocast_context


class Networks:
    def __init__(self, student: Optional[nn.Module], teachers: List[nn.Module], device: torch.device,
                 amp: str, max_iterations: int, ignore_index: int, channels_last: bool = False) -> None:
        self._student = student
        self.teachers = teachers
        self.device = device
        self.amp = amp
        self.max_iterations = max_iterations
        self.ignore_index = ignore_index
        self.channels_last = channels_last

    @property
    def has_student(self) -> bool:
        return self._student is not None

    @property
    def num_teachers(self) -> int:
        return len(self.teachers)

    def _prepare(self, images: Tensor) -> Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def student(self, images: Tensor) -> Any:
        if self._student is None:
            raise ValueError("this --kd-method trains no student; forward_networks must not call nets.student")
        with autocast_context(self.device, self.amp):
            return self._student(self._prepare(images))

    def teacher(self, index: int, images: Tensor) -> Any:
        with torch.no_grad(), autocast_context(self.device, self.amp):
            return self.teachers[index](self._prepare(images))
