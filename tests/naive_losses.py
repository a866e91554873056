"""Straightforward reference formulations of the losses SegKD computes in an optimised form.

Each is the formula written the direct way (as the official code does it), kept here so the optimised
forms can be checked against them in the tests and timed next to them (``benchmarks/bench_losses.py
--compare-naive``) without the official code.

``use_naive(method)`` switches a built method to these forms in place (Af-DCD: the align conv applied
before the projector instead of folded into it; CIRKD: all B^2 N x N relation matrices at once and
the memory scores divided by tau after the product) and returns the names of what it switched.
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor, nn

from losses.common import kd_loss


def naive_masked_conv(align: nn.Module, conv: nn.Conv2d, student_feat: Tensor, keep_mask: Tensor) -> Tensor:
    """``conv(align(student_feat) * keep_mask)`` with the Ct-channel aligned map built."""
    return conv(align(student_feat) * keep_mask)


def naive_relation_kl(s_hat: Tensor, t_hat: Tensor, tau: float, group_size: int = 0) -> Tensor:
    """CIRKD's mini-batch relation as the official loop: every pair's N x N scores at once."""
    batch = s_hat.shape[0]
    size = group_size if 0 < group_size < batch else batch
    group_losses: List[Tensor] = []
    for start in range(0, batch, size):
        members = range(start, min(start + size, batch))
        total = sum(kd_loss(s_hat[i] @ s_hat[j].t() / tau, t_hat[i] @ t_hat[j].t() / tau)
                    for i in members for j in members)
        group_losses.append(total / (len(members) ** 2))
    return torch.stack(group_losses).mean()


def naive_anchor_kl(anchors_s: Tensor, anchors_t: Tensor, keys: Tensor, tau: float, temperature: float) -> Tensor:
    """CIRKD's memory similarity KD as the official code: (anchors x keys) / tau, then ``kd_loss``."""
    return kd_loss(anchors_s @ keys.t() / tau, anchors_t @ keys.t() / tau, temperature)


def use_naive(method: nn.Module) -> List[str]:
    """Switch ``method`` (and its sub-losses) to the reference forms; returns what was switched."""
    switched = []
    if hasattr(method, "fold_align"):
        method.fold_align = False
        switched.append("af_dcd: align before the projector (unfolded)")
    minibatch = getattr(method, "minibatch", None)
    if minibatch is not None and hasattr(minibatch, "relation_fn"):
        minibatch.relation_fn = lambda s_hat, t_hat, tau, group_size, rows: naive_relation_kl(s_hat, t_hat, tau,
                                                                                              group_size)
        switched.append("cirkd: mini-batch relation, all pairs at once")
    memory = getattr(method, "memory", None)
    if memory is not None and hasattr(memory, "anchor_kl_fn"):
        memory.anchor_kl_fn = lambda a_s, a_t, keys, tau, temperature: naive_anchor_kl(a_s, a_t, keys, tau,
                                                                                       temperature)
        switched.append("cirkd: memory scores, all anchors at once")
    return switched
