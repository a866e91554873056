"""CIRKD's mini-batch pixel relation, computed in row chunks with the scores recomputed in backward.

    L = 1/G^2 sum_{i,j in group} (1/N) sum_{rows r of image i} KL(softmax(t_i[r] . t_j / tau) || softmax(s_i[r] . s_j / tau))

The official code builds all B^2 N x N score matrices (and their softmaxes) at once and keeps them for
backward: at 512x1024 crops (N = 64 x 128 pixels) that is B^2 x 268 MB per matrix. Here a chunk of
``rows`` rows of image i is scored against every image j of its group at once and the KL accumulated.
The loss is a scalar of the student features alone (the teacher's get no gradient), so the chunk's
gradient is applied right away, in forward, instead of keeping its scores for backward:
    dL/dS = w (softmax(S) - softmax(T)) / tau      (S, T = the chunk's scores / tau, w = its weight)
    d s_i[r] += dL/dS @ s_j,   d s_j += dL/dS^T @ s_i[r]
Only that (B, N, C) gradient is kept; backward scales it by the incoming gradient. The FLOPs are the
direct form's (no recomputation), the memory one chunk's scores. Same value and gradient as the direct
form (``tests/naive_losses.py``) up to float rounding. Not twice differentiable (nothing here needs it).
"""
from __future__ import annotations

from typing import Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_ROWS = 1024


def _groups(batch: int, group_size: int) -> List[range]:
    size = group_size if 0 < group_size < batch else batch
    return [range(start, min(start + size, batch)) for start in range(0, batch, size)]


def _chunks(groups: Sequence[range], pixels: int, rows: int) -> Iterator[Tuple[int, range, slice]]:
    for group in groups:
        for i in group:
            for start in range(0, pixels, rows):
                yield i, group, slice(start, min(start + rows, pixels))


def _chunk_logits(s_hat: Tensor, t_hat: Tensor, i: int, group: range, rows: slice, tau: float
                  ) -> Tuple[Tensor, Tensor, Tensor]:
    """log_softmax over each image j's pixels of the chunk's scores, (R, G, N) for student and teacher,
    and the group's student features (the keys the chunk's gradient flows into)."""
    members = slice(group.start, group.stop)
    s_keys = s_hat[members]                                           # (G, N, C)
    s_scores = torch.einsum("rc,gnc->rgn", s_hat[i, rows], s_keys) / tau
    t_scores = torch.einsum("rc,gnc->rgn", t_hat[i, rows], t_hat[members]) / tau
    return F.log_softmax(s_scores, dim=-1), F.log_softmax(t_scores, dim=-1), s_keys


class _ChunkedRelationKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s_hat: Tensor, t_hat: Tensor, tau: float, group_size: int, rows: int) -> Tensor:
        batch, pixels, _ = s_hat.shape
        groups = _groups(batch, group_size)
        want_grad = ctx.needs_input_grad[0]
        grad = torch.zeros_like(s_hat) if want_grad else None
        total = s_hat.new_zeros(())
        for i, group, chunk in _chunks(groups, pixels, rows):
            log_q, log_p, s_keys = _chunk_logits(s_hat, t_hat, i, group, chunk, tau)
            weight = 1.0 / (len(group) ** 2 * pixels * len(groups))
            p = log_p.exp()
            total += weight * (p * (log_p - log_q)).sum()
            if want_grad:
                d_scores = (log_q.exp() - p) * (weight / tau)                     # (R, G, N)
                grad[i, chunk] += torch.einsum("rgn,gnc->rc", d_scores, s_keys)
                grad[group.start:group.stop] += torch.einsum("rgn,rc->gnc", d_scores, s_hat[i, chunk])
        ctx.save_for_backward(grad if want_grad else None)
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None, None, None


def chunked_relation_kl(s_hat: Tensor, t_hat: Tensor, tau: float, group_size: int = 0,
                        rows: int = DEFAULT_ROWS) -> Tensor:
    """The mini-batch relation loss of L2-normalised (B, N, C) student / teacher pixel features."""
    if rows < 1:
        raise ValueError("rows per chunk must be >= 1, got %d" % rows)
    return _ChunkedRelationKL.apply(s_hat, t_hat.detach(), float(tau), int(group_size), int(rows))


class _ChunkedAnchorKL(torch.autograd.Function):
    """batchmean over anchors of KL(softmax(a_t . K) || softmax(a_s . K)), K fixed (already scaled)."""

    @staticmethod
    def forward(ctx, anchors_s: Tensor, anchors_t: Tensor, keys: Tensor, rows: int) -> Tensor:
        count = anchors_s.shape[0]
        want_grad = ctx.needs_input_grad[0]
        grad = torch.empty_like(anchors_s) if want_grad else None
        total = anchors_s.new_zeros(())
        for start in range(0, count, rows):
            log_q = F.log_softmax(anchors_s[start:start + rows] @ keys.t(), dim=-1)
            log_p = F.log_softmax(anchors_t[start:start + rows] @ keys.t(), dim=-1)
            p = log_p.exp()
            total += (p * (log_p - log_q)).sum()
            if want_grad:
                grad[start:start + rows] = ((log_q.exp() - p) / count) @ keys
        ctx.save_for_backward(grad if want_grad else None)
        return total / count

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None, None


def chunked_anchor_kl(anchors_s: Tensor, anchors_t: Tensor, keys: Tensor, tau: float, temperature: float,
                      rows: int = 4 * DEFAULT_ROWS) -> Tensor:
    """CIRKD's memory term ``kd_loss(a_s K^T / tau, a_t K^T / tau, T)``: 1 / (tau T) is folded into the
    (small) key matrix and the anchors are taken ``rows`` at a time, their gradient applied in forward
    as for the relation above. Times T^2 like ``kd_loss``; no gradient to the keys."""
    if rows < 1:
        raise ValueError("rows per chunk must be >= 1, got %d" % rows)
    scaled_keys = keys.detach() / (tau * temperature)
    return _ChunkedAnchorKL.apply(anchors_s, anchors_t.detach(), scaled_keys, int(rows)) * (temperature ** 2)
