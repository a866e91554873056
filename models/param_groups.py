"""Optimizer parameter groups a model exposes: lr multipliers and weight-decay rules, frozen BN.

Public API:
    param_groups(model, weight_decay, head_lr_mult=1.0, decay_norm_and_bias=True) -> list[dict]
        SGD groups, each with ``lr_mult`` (the schedule sets ``lr = base_lr(t) * lr_mult``) and its
        ``weight_decay``. Parameters under the model's ``meta.head_prefixes`` (``head.``,
        ``auxlayer.`` for the CIRKD family) get ``head_lr_mult`` (DKD: 10); with
        ``decay_norm_and_bias=False`` BatchNorm weights/biases and conv biases get no decay (MGD,
        mmseg ``paramwise_cfg``); ``decay_only`` (fnmatch patterns) limits decay to those parameters
        (DKD steps >= 1: the new head). Frozen parameters (requires_grad False) are left out. Group
        order is stable (backbone, head; decayed, not decayed) so a resume file's optimizer state fits.
    freeze_batchnorm(model)        BN layers in eval mode with their affine parameters frozen
                                   (DKD steps >= 1); call again after every ``model.train()``.
"""
from __future__ import annotations

import fnmatch
from typing import Dict, List, Sequence

from torch import nn

from .meta import model_meta, unwrap

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def _no_decay_names(model: nn.Module) -> set:
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = "%s.%s" % (module_name, param_name) if module_name else param_name
            if isinstance(module, _NORMS) or param_name == "bias":
                names.add(full)
    return names


def param_groups(model: nn.Module, weight_decay: float, head_lr_mult: float = 1.0,
                 decay_norm_and_bias: bool = True, decay_only: Sequence[str] = ()) -> List[Dict]:
    model = unwrap(model)
    heads = model_meta(model).head_prefixes
    no_decay = set() if decay_norm_and_bias else _no_decay_names(model)
    if decay_only:      # only these (fnmatch) get weight decay: DKD's new head at steps >= 1
        no_decay |= {n for n, _ in model.named_parameters() if not any(fnmatch.fnmatchcase(n, p) for p in decay_only)}
    buckets: Dict[tuple, List[nn.Parameter]] = {}
    order = [("backbone", True), ("backbone", False), ("head", True), ("head", False)]
    for key in order:
        buckets[key] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "head" if any(name.startswith(p) for p in heads) else "backbone"
        buckets[(part, name not in no_decay)].append(param)
    groups = []
    for part, decay in order:
        if buckets[(part, decay)]:
            groups.append({"params": buckets[(part, decay)], "name": "%s%s" % (part, "" if decay else "_no_decay"),
                           "lr_mult": head_lr_mult if part == "head" else 1.0,
                           "weight_decay": weight_decay if decay else 0.0})
    return groups


def freeze_batchnorm(model: nn.Module) -> None:
    for module in unwrap(model).modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for param in module.parameters(recurse=False):
                param.requires_grad_(False)
