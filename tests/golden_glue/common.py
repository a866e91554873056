"""Helpers shared by the golden glue modules."""
from __future__ import annotations

from typing import Dict, Iterable

import torch
from torch import nn


def leaf(t: torch.Tensor, requires_grad: bool = True) -> torch.Tensor:
    """A float64 leaf copy of a case input."""
    t = t.detach().clone()
    if t.is_floating_point():
        t = t.double().requires_grad_(requires_grad)
    return t


def load_params(module: nn.Module, params: Dict[str, torch.Tensor]) -> None:
    """Load a case's params (names = the module's state keys) strictly, in float64."""
    module.double()
    missing = [k for k in params if k not in dict(module.named_parameters()) and k not in module.state_dict()]
    if missing:
        raise KeyError("case params not in module: %s (module has %s)" % (missing, list(module.state_dict())))
    with torch.no_grad():
        state = module.state_dict()
        for k, v in params.items():
            state[k].copy_(v.to(state[k].dtype))


def grads_of(total: torch.Tensor, named: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    names = [k for k, v in named.items() if v.requires_grad]
    gs = torch.autograd.grad(total, [named[k] for k in names], retain_graph=True, allow_unused=True)
    return {k: (g if g is not None else torch.zeros_like(named[k])) for k, g in zip(names, gs)}
