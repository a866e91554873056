"""The distillation-method registry and the contract every method follows.

A method is one registered ``nn.Module`` (one file in ``losses/``). The training loop:

1. builds it once with ``Method.from_args(args, student_info, teacher_info)``, where the infos
   map output names (``logits``, ``aux_logits``, ``c1``..``c4``, ``head_feat``) to channel counts
   measured by a dummy forward (as CIRKD does) and ``args`` is the parsed CLI (it also carries
   ``num_classes``, ``dataset``, ``max_iterations``, ``ignore_index``);
2. adds ``method.student_optimizer_parameters()`` to the student's SGD optimizer (same lr,
   momentum, weight decay and poly schedule);
3. every iteration calls ``method(ctx)`` with a :class:`StepContext` and receives a dict of
   *already weighted* loss terms; the loop adds the task loss (``ctx.task_terms``, which a
   method may replace by returning a ``"task"`` key), sums, backpropagates;
4. calls ``method.before_optimizer_step()`` after backward (grads unscaled), then steps, then
   ``method.after_optimizer_step(ctx)`` (e.g. SKD's discriminator update);
5. saves ``method.state_dict()`` (buffers such as CIRKD's queues, ``get_extra_state`` for own
   optimizers) in the resume file and restores it on ``--resume``.

Every random draw a method makes goes through ``ctx.generator`` or an explicit argument so
tests can inject it.
"""
from __future__ import annotations

import abc
import argparse
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Type

import torch
from torch import Tensor, nn

# Output names -> channel counts of one network, from a dummy forward.
ChannelInfo = Dict[str, int]


@dataclass
class StepContext:
    """Everything a method may read in one training step."""
    student: Any                      # SegOutputs of the student (train mode, with grad)
    labels: Tensor                    # (B, H, W) int64, ignore value = ignore_index
    iteration: int                    # 1-based iteration being trained
    max_iterations: int
    teacher: Any = None               # SegOutputs of the first teacher (no grad), None if teacher-free
    teachers: List[Any] = field(default_factory=list)   # all teachers' outputs
    images: Optional[Tensor] = None
    ignore_index: int = -1
    task_terms: Dict[str, Tensor] = field(default_factory=dict)
    generator: Optional[torch.Generator] = None   # injected RNG for the method's draws (tests)
    extra: Dict[str, Any] = field(default_factory=dict)  # later systems: unlabeled batch, old model ...


_REGISTRY: Dict[str, Type["DistillMethod"]] = {}


def register(name: str) -> Callable[[Type["DistillMethod"]], Type["DistillMethod"]]:
    """Class decorator: make a method available as ``--kd-method name``."""
    def wrap(cls: Type["DistillMethod"]) -> Type["DistillMethod"]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError("kd method %r registered twice (%s, %s)" % (name, _REGISTRY[name], cls))
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return wrap


def available_methods() -> List[str]:
    return sorted(_REGISTRY)


def get_method_class(name: str) -> Type["DistillMethod"]:
    if name not in _REGISTRY:
        raise KeyError("unknown --kd-method %r; available: %s (combine with '+', e.g. kd+cwd)"
                       % (name, ", ".join(available_methods())))
    return _REGISTRY[name]


def add_flag(parser: argparse.ArgumentParser, *names: str, **kwargs: Any) -> None:
    """Add an option unless another method already added it (methods share e.g. --lambda-kd)."""
    if any(n in parser._option_string_actions for n in names):
        return
    parser.add_argument(*names, **kwargs)


def pick(value: Any, default: Any) -> Any:
    """CLI value if given (not None), else the method's default."""
    return default if value is None else value


def on_off(parser: argparse.ArgumentParser, name: str, default: Optional[bool], help: str) -> None:
    """A real boolean flag pair ``--name`` / ``--no-name`` (the official code used type=bool)."""
    if any(n in parser._option_string_actions for n in ("--" + name, "--no-" + name)):
        return
    dest = name.replace("-", "_")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--" + name, dest=dest, action="store_true", default=default, help=help)
    group.add_argument("--no-" + name, dest=dest, action="store_false")


class DistillMethod(nn.Module, metaclass=abc.ABCMeta):
    """Base class. Subclasses override the class attributes, ``add_args``, ``from_args``, ``forward``."""

    name: str = "?"
    num_teachers: int = 1            # 0 teacher-free, 1 offline KD, 2 (MGD)
    teacher_mode: str = "eval"       # "train": teacher forward in train mode (MasKD stage 1)
    trains_student: bool = True      # False: only the method's own parameters are trained
    student_stages: bool = False     # True: needs c1..c4 from the student (always exposed by name)

    @classmethod
    def teachers_needed(cls, args: argparse.Namespace) -> int:
        """How many teachers the loop must build for these flags (default ``num_teachers``)."""
        return cls.num_teachers

    @classmethod
    def teacher_is_student(cls, args: argparse.Namespace) -> bool:
        """True when the teacher must be a trained copy of the student's architecture (Tf-KD self)."""
        return False

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        """Register the method's own flags (use ``add_flag``/``on_off``, defaults None where per-dataset)."""

    @classmethod
    @abc.abstractmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "DistillMethod":
        """Build the method from the parsed flags and the networks' channel counts."""

    @abc.abstractmethod
    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        """The method's weighted loss terms for one step."""

    def student_optimizer_parameters(self) -> Iterable[nn.Parameter]:
        """Parameters optimised together with the student (adapters, projectors)."""
        return [p for p in self.parameters() if p.requires_grad]

    def before_optimizer_step(self) -> None:
        """After backward, before the optimizer step (e.g. Af-DCD clips its own gradients)."""

    def after_optimizer_step(self, ctx: StepContext) -> Dict[str, Tensor]:
        """After the student step (e.g. SKD's discriminator step). Returns terms to log only."""
        return {}

    def export_state(self, path: str) -> None:
        """Write what a method that trains no student learned (e.g. MasKD's tokens) to ``path``."""
        from utils.checkpoint import atomic_save
        atomic_save(self.state_dict(), path)

    def describe(self) -> str:
        return self.name


@register("none")
class NoDistillation(DistillMethod):
    """Plain supervised training (task loss only). Also how teachers are trained."""

    num_teachers = 0

    @classmethod
    def from_args(cls, args, student_info, teacher_info):
        return cls()

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        return {}


class CombinedMethod(DistillMethod):
    """``--kd-method a+b``: the union of several methods' terms (a shared term such as ``kd`` once)."""

    def __init__(self, methods: List[DistillMethod]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(methods)
        self.name = "+".join(m.name for m in methods)
        self.num_teachers = max(m.num_teachers for m in methods)
        self.student_stages = any(m.student_stages for m in methods)
        if any(not m.trains_student or m.teacher_mode != "eval" for m in methods):
            raise ValueError("%s: methods with a special training mode cannot be combined" % self.name)

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "CombinedMethod":
        return cls([c.from_args(args, student_info, teacher_info) for c in method_classes(args.kd_method)])

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        # A term name means one term computed from shared flags (e.g. "kd" from --lambda-kd and
        # --kd-temperature, bundled by most methods): the first part's value is kept, never summed twice.
        terms: Dict[str, Tensor] = {}
        for m in self.parts:
            for k, v in m(ctx).items():
                terms.setdefault(k, v)
        return terms

    def student_optimizer_parameters(self):
        return [p for m in self.parts for p in m.student_optimizer_parameters()]

    def before_optimizer_step(self) -> None:
        for m in self.parts:
            m.before_optimizer_step()

    def after_optimizer_step(self, ctx: StepContext) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        for m in self.parts:
            out.update(m.after_optimizer_step(ctx))
        return out


def method_classes(spec: str) -> List[Type[DistillMethod]]:
    return [get_method_class(n.strip()) for n in spec.split("+") if n.strip()]


def teachers_needed(args: argparse.Namespace) -> int:
    return max(c.teachers_needed(args) for c in method_classes(args.kd_method))


def teacher_is_student(args: argparse.Namespace) -> bool:
    return any(c.teacher_is_student(args) for c in method_classes(args.kd_method))


def build_method(args: argparse.Namespace, student_info: ChannelInfo,
                 teacher_info: Optional[ChannelInfo]) -> DistillMethod:
    classes = method_classes(args.kd_method)
    if len(classes) == 1:
        return classes[0].from_args(args, student_info, teacher_info)
    return CombinedMethod.from_args(args, student_info, teacher_info)

