"""Golden-case glue: run one case of ``shared/golden/<method>/*.pt`` through SegKD's own losses.

``run_case(case) -> {"outputs": {name: 0-d tensor}, "grads": {name: tensor}, ["state_after": {...}]}``
dispatches on ``case["method"]`` to ``tests/golden_glue/<method>.py::run_case``. Each glue module
builds the project's loss from ``case["config"]`` (never from the case's name), loads
``case["params"]``, feeds ``case["inputs"]`` (including the injected random draws) and returns
tensors named as in the case. ``compare(case, result)`` lists every mismatch beyond ``case["tol"]``.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Dict, List

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

GOLDEN_DIR = os.path.join(HERE, "data", "golden")


def load_case(path: str) -> dict:
    # Golden files are our own copied test data (nested dicts of tensors and Python scalars).
    return torch.load(path, map_location="cpu", weights_only=False)


def run_case(case: dict) -> Dict[str, Dict[str, torch.Tensor]]:
    glue = importlib.import_module("golden_glue.%s" % case["method"])
    return glue.run_case(case)


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, prefix + k + ".")
        else:
            yield prefix + k, v


def compare(case: dict, result: dict) -> List[str]:
    rtol, atol = case["tol"]["rtol"], case["tol"]["atol"]
    problems = []
    for section in ("outputs", "grads", "state_after"):
        want = dict(_flat(case.get(section) or {}))
        got = dict(_flat(result.get(section) or {}))
        for name, ref in want.items():
            if name not in got:
                problems.append("%s.%s: missing" % (section, name))
                continue
            g = got[name]
            if not torch.is_tensor(ref):
                if g != ref:
                    problems.append("%s.%s: %r != %r" % (section, name, g, ref))
                continue
            g = torch.as_tensor(g).detach().to("cpu")
            if tuple(g.shape) != tuple(ref.shape):
                problems.append("%s.%s: shape %s != %s" % (section, name, tuple(g.shape), tuple(ref.shape)))
                continue
            if not ref.is_floating_point():
                if not torch.equal(g.to(ref.dtype), ref):
                    problems.append("%s.%s: integer values differ" % (section, name))
                continue
            g, r = g.double(), ref.double()
            if case["tol"].get("equal_nan"):
                # The official code returns NaN where SegKD returns a graph-connected 0 (the cards
                # recommend the fix and accept either value for these entries).
                fixed = torch.isnan(r) & (torch.isnan(g) | (g == 0))
                g = torch.where(fixed, torch.zeros_like(g), g)
                r = torch.where(fixed, torch.zeros_like(r), r)
            err = (g - r).abs()
            bound = atol + rtol * r.abs()
            if not bool((err <= bound).all()) or not bool(torch.isfinite(g).all() == torch.isfinite(r).all()):
                problems.append("%s.%s: max err %.3g (ref max %.3g)" % (section, name, float(err.max()), float(r.abs().max())))
    return problems


def all_case_paths(methods=None) -> List[str]:
    out = []
    if not os.path.isdir(GOLDEN_DIR):
        return out
    for method in sorted(os.listdir(GOLDEN_DIR)):
        if methods and method not in methods:
            continue
        d = os.path.join(GOLDEN_DIR, method)
        out += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".pt")]
    return out
