"""The contract every distillation method follows (the registry is ``losses/registry.py``).

A method is one registered ``nn.Module`` (one file in ``losses/``). Per run the loop:

1. parses ``--kd-method`` once (``losses/registry.py``: ``a+b`` combines methods) and asks the classes
   what they need: ``teachers_needed(args)``, ``streams_needed(args)`` (named batch streams such as
   ``unlabeled``), ``teacher_is_student``, ``teacher_mode``, ``trains_student``,
   ``missing_keys_allowed(args, role)`` (checkpoint keys a network may lack, and their init);
2. builds it with ``Method.from_networks(args, student_info, teacher_infos)``: the student's and
   EVERY teacher's output channels (name -> channels, declared by the models). The default hands
   the first teacher to ``from_args(args, student_info, teacher_info)``, which most methods define;
3. gives it the task criterion of the flags (``method.task_criterion``: CE or OHEM CE + aux);
4. every step: ``ctx = method.forward_networks(nets, batch, iteration)`` runs the networks on the
   streams (default: teachers and student on ``labeled``), then ``method.task_loss(ctx)`` (the
   supervised terms; default the task criterion on the student) and ``method(ctx)`` (its weighted
   distillation terms). Two terms with one name are an error. The loop sums, backpropagates,
   calls ``before_optimizer_step()``, steps, then ``after_optimizer_step(ctx)`` (own optimizers);
5. validates with ``method.build_evaluator(args, num_classes)`` (reset/process/result; the best
   checkpoint is picked by the evaluator's ``best_key``) and the model's own ``predict`` rule;
6. calls the run hooks ``before_train(run)``, ``after_step(run, iteration, values)``,
   ``after_train(run)``; saves ``method.state_dict()`` in the resume file.

Every random draw a method makes goes through ``ctx.generator`` or an explicit argument so
tests can inject it.
"""
from __future__ import annotations

import abc
import argparse
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type

import torch
from torch import Tensor, nn

# Output names -> channel counts of one network (every model declares them in ``out_channels``).
ChannelInfo = Dict[str, int]


@dataclass
class StreamBatch:
    """One named stream's share of a (micro-)batch."""
    images: Tensor                    # (B, 3, H, W) float, the pipeline's normalisation
    labels: Tensor                    # (B, H, W) int64, ignore = -1 (all -1 for unlabeled streams)
    names: List[str] = field(default_factory=list)


@dataclass
class StepContext:
    """Everything a method may read in one training step."""
    student: Any                      # SegOutputs of the student (train mode, with grad)
    labels: Tensor                    # (B, H, W) int64 of the labeled stream, ignore value = ignore_index
    iteration: int                    # 1-based iteration being trained
    max_iterations: int
    teacher: Any = None               # SegOutputs of the first teacher (no grad), None if teacher-free
    teachers: List[Any] = field(default_factory=list)   # all teachers' outputs
    images: Optional[Tensor] = None
    ignore_index: int = -1
    task_terms: Dict[str, Tensor] = field(default_factory=dict)
    generator: Optional[torch.Generator] = None   # injected RNG for the method's draws (tests)
    batch: Dict[str, StreamBatch] = field(default_factory=dict)   # every stream of this micro-batch
    extra: Dict[str, Any] = field(default_factory=dict)  # injected draws (tests) and per-method scratch


@dataclass(frozen=True)
class MissingKeys:
    """Checkpoint keys a network may lack (fnmatch patterns) and how to initialise them."""
    patterns: Tuple[str, ...]
    init: Optional[Callable[[nn.Module, List[str]], None]] = None   # (model, missing keys) -> None


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
    streams: Tuple[str, ...] = ("labeled",)   # named batch streams a step receives

    # ------------------------------------------------------------ what the loop must build
    @classmethod
    def teachers_needed(cls, args: argparse.Namespace) -> int:
        """How many teachers the loop must build for these flags (default ``num_teachers``)."""
        return cls.num_teachers

    @classmethod
    def teacher_is_student(cls, args: argparse.Namespace) -> bool:
        """True when the teacher must be a trained copy of the student's architecture (Tf-KD self)."""
        return False

    @classmethod
    def streams_needed(cls, args: argparse.Namespace) -> Tuple[str, ...]:
        """Named batch streams (``labeled`` always first; e.g. ``unlabeled`` from --unlabeled-list)."""
        return cls.streams

    @classmethod
    def missing_keys_allowed(cls, args: argparse.Namespace, role: str) -> Optional[MissingKeys]:
        """Keys the checkpoint of network ``role`` (student, teacher, teacher2) may lack; None: strict."""
        return None

    @classmethod
    def check_setup(cls, args: argparse.Namespace) -> None:
        """Start-up check of the flags (e.g. the crop vs a patch grid); raise ValueError with the fix."""

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        """Register the method's own flags (use ``add_flag``/``on_off``, defaults None where per-dataset)."""

    @classmethod
    @abc.abstractmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "DistillMethod":
        """Build the method from the parsed flags and the networks' channel counts."""

    @classmethod
    def from_networks(cls, args: argparse.Namespace, student_info: Optional[ChannelInfo],
                      teacher_infos: Sequence[ChannelInfo]) -> "DistillMethod":
        """What the loop calls: every teacher's channels. Multi-teacher methods override this."""
        return cls.from_args(args, student_info, teacher_infos[0] if teacher_infos else None)

    @classmethod
    def build_evaluator(cls, args: argparse.Namespace, num_classes: int):
        """The validation evaluator (reset / process / result, ``best_key``); default mIoU."""
        from utils.evaluators import MIoUEvaluator
        return MIoUEvaluator(num_classes, absent=getattr(args, "val_miou", "zero"))

    # ------------------------------------------------------------ one step
    def forward_networks(self, nets: Any, batch: Dict[str, StreamBatch], iteration: int) -> StepContext:
        """Run the networks on the streams. Default: teachers and student on ``labeled``.

        ``nets.student(x)`` / ``nets.teacher(i, x)`` apply each network's own input adapter,
        autocast and (for the student) DDP; teachers run without grad."""
        labeled = batch["labeled"]
        teacher_outs = [nets.teacher(i, labeled.images) for i in range(nets.num_teachers)]
        student_out = nets.student(labeled.images) if nets.has_student else None
        return StepContext(student=student_out, labels=labeled.labels, iteration=iteration,
                           max_iterations=nets.max_iterations, teacher=teacher_outs[0] if teacher_outs else None,
                           teachers=teacher_outs, images=labeled.images, ignore_index=nets.ignore_index,
                           batch=batch)

    def task_loss(self, ctx: StepContext) -> Dict[str, Tensor]:
        """The supervised terms (already weighted). Default: the flags' task criterion on the student."""
        criterion = self.__dict__.get("task_criterion")
        if ctx.student is None or criterion is None:
            return {}
        return criterion(ctx.student, ctx.labels)

    def set_task_criterion(self, criterion: Callable[[Any, Tensor], Dict[str, Tensor]]) -> None:
        """Kept outside the module tree: a plain attribute, never in the state_dict."""
        self.__dict__["task_criterion"] = criterion

    @abc.abstractmethod
    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        """The method's weighted loss terms for one step."""

    def student_optimizer_parameters(self) -> Iterable[nn.Parameter]:
        """Parameters optimised together with the student (adapters, projectors)."""
        return [p for p in self.parameters() if p.requires_grad]

    def peer_networks(self) -> List[nn.Module]:
        """Networks the method trains like a student (CPS's second branch): they get the student's
        parameter groups (lr multipliers, decay rules) instead of the plain method group."""
        return []

    def before_optimizer_step(self) -> None:
        """After backward, before the optimizer step (e.g. Af-DCD clips its own gradients)."""

    def after_optimizer_step(self, ctx: StepContext) -> Dict[str, Tensor]:
        """After the student step (e.g. SKD's discriminator step). Returns terms to log only."""
        return {}

    # ------------------------------------------------------------ run hooks
    def prepare_run(self, run: Any) -> None:
        """Once, after the networks are built and before the data streams (e.g. DKD-M's exemplar
        memory, which the training set then includes)."""

    def before_train(self, run: Any) -> None:
        """Once, after everything is built (and resumed), before the first step."""

    def after_step(self, run: Any, iteration: int, values: Dict[str, float]) -> None:
        """After every optimizer step (values: the logged terms of the step)."""

    def after_train(self, run: Any) -> None:
        """Once, after the last iteration (e.g. build an exemplar memory)."""

    def export_state(self, path: str) -> None:
        """Write what a method that trains no student learned (e.g. MasKD's tokens) to ``path``."""
        from utils.checkpoint import atomic_save
        atomic_save(self.state_dict(), path)

    def describe(self) -> str:
        return self.name
