"""Keeping non-finite numbers away from the weights.

Every step, after backward and before the optimizer step, the loop asks: is any loss term or any
gradient NaN/Inf on any process (``step_is_finite``, all processes agree through one all-reduce)?
If so the step is not taken: the run stops naming the iteration and the terms, or, with
``--skip-nonfinite K``, the step is skipped and counted and the run stops after K bad steps in a
row. Checkpoints are checked again before they are written (engine/state.py).
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List

import torch

from utils.distributed import all_reduce_sum


def non_finite_terms(values: Dict[str, float]) -> List[str]:
    return [k for k, v in values.items() if not math.isfinite(v)]


def grads_finite(params: Iterable[torch.nn.Parameter]) -> bool:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def step_is_finite(local_ok: bool, device: torch.device) -> bool:
    """True when every process's step is finite (one all-reduce; no collective when alone)."""
    flag = torch.tensor([0.0 if local_ok else 1.0], device=device)
    all_reduce_sum(flag)
    return float(flag.item()) == 0.0


class NonFiniteCounter:
    """Consecutive skipped steps; ``allowed`` = --skip-nonfinite (0: stop at the first)."""

    def __init__(self, allowed: int) -> None:
        self.allowed = int(allowed)
        self.in_a_row = 0
        self.total = 0

    def bad_step(self) -> bool:
        """Record a bad step; True when the run may go on (skip), False when it must stop."""
        self.in_a_row += 1
        self.total += 1
        return self.in_a_row <= self.allowed

    def good_step(self) -> None:
        self.in_a_row = 0
