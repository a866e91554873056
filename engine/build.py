"""Build a run's method from its parsed ``--kd-method`` spec and the built networks.

Networks come from ``engine/specs.py`` (one spec per network), data streams from ``engine/data.py``.
"""
from __future__ import annotations

import argparse
from typing import List, Optional

import torch
from torch import nn

import losses
from engine.specs import BuildError


def build_method(args: argparse.Namespace, method_spec: losses.MethodSpec, student: Optional[nn.Module],
                 teachers: List[nn.Module], device: torch.device) -> losses.DistillMethod:
    """Every network's output channels (declared by the models) go to the method."""
    student_info = dict(student.out_channels) if student is not None else None
    teacher_infos = [dict(t.out_channels) for t in teachers]
    try:
        method = method_spec.build(args, student_info, teacher_infos)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise BuildError("--kd-method %s: %s" % (args.kd_method, exc.args[0] if exc.args else exc)) from exc
    return method.to(device)
