"""The optimizer over the models' parameter groups, and the learning-rate schedule.

    lr(t) = warm-up poly:  base * (f + (1 - f) * t / W)                        for t < W (W > 0)
                           floor + (base - floor) * (1 - (t - 1) / T) ** power  after (CIRKD poly)
    each group: lr(t) * group["lr_mult"]

``W`` = ``--warmup-iters`` (or ``--warmup-fraction`` x T), ``f`` = ``--warmup-factor``;
with W = 0 the schedule is exactly CIRKD's poly. SGD with ``--nesterov`` optional.
"""
from __future__ import annotations

import argparse
from typing import Dict, Iterable, List, Optional, Sequence

import torch
from torch import nn

from models.param_groups import param_groups


def poly_lr(base: float, iteration: int, max_iterations: int, power: float, floor: float = 0.0) -> float:
    """CIRKD's poly schedule: lr for 1-based ``iteration`` = floor + (base - floor)(1 - (it-1)/max)^power."""
    return floor + (base - floor) * (1 - (iteration - 1) / max_iterations) ** power


def warmup_iterations(args: argparse.Namespace) -> int:
    if args.warmup_iters is not None:
        return int(args.warmup_iters)
    return int(round(args.warmup_fraction * args.max_iterations))


def scheduled_lr(args: argparse.Namespace, iteration: int) -> float:
    """The base learning rate of 1-based ``iteration`` (before the group multipliers)."""
    warmup = warmup_iterations(args)
    if warmup and iteration <= warmup:
        return args.lr * (args.warmup_factor + (1.0 - args.warmup_factor) * (iteration - 1) / warmup)
    return poly_lr(args.lr, iteration, args.max_iterations, args.power, args.lr_min)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


def build_optimizer(args: argparse.Namespace, student: Optional[nn.Module],
                    method_params: Iterable[nn.Parameter], peers: Sequence[nn.Module] = ()) -> torch.optim.Optimizer:
    """SGD over the student's groups, the groups of networks a method trains like a student (``peers``,
    e.g. CPS's second branch: same lr multipliers and decay rules) and the method's other parameters."""
    groups: List[Dict] = []
    for net in ([student] if student is not None else []) + list(peers):
        groups += param_groups(net, args.weight_decay, args.head_lr_mult, not args.no_decay_norm_bias,
                               getattr(args, "weight_decay_only", None) or ())
    in_peers = {id(p) for net in peers for p in net.parameters()}
    method_params = [p for p in method_params if p.requires_grad and id(p) not in in_peers]
    if method_params:
        groups.append({"params": method_params, "name": "method", "lr_mult": args.method_lr_mult,
                       "weight_decay": args.weight_decay})
    if not groups:
        raise ValueError("--kd-method %s trains nothing (no student and no method parameters)" % args.kd_method)
    return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                           nesterov=args.nesterov)
