"""``--kd-method none``: plain supervised training (the task loss only). Also how teachers are trained."""
from __future__ import annotations

from typing import Dict

from torch import Tensor

from .base import DistillMethod, StepContext
from .registry import register


@register("none")
class NoDistillation(DistillMethod):
    """Plain supervised training (task loss only). Also how teachers are trained."""

    num_teachers = 0

    @classmethod
    def from_args(cls, args, student_info, teacher_info):
        return cls()

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        return {}
