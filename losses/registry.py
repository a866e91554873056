"""The ``--kd-method`` registry, parsed once into a :class:`MethodSpec`, and ``a+b`` combinations.

    @register("name") class MyMethod(DistillMethod): ...   # one file per method in losses/
    spec = parse_spec("kd+cwd")            # classes looked up in the registry below
    spec.teachers_needed(args), spec.streams_needed(args), spec.trains_student, spec.teacher_mode
    method = spec.build(args, student_info, teacher_infos)   # one method, or a CombinedMethod

A combined method returns the union of its parts' terms; two parts returning a term of the same
name (e.g. ``kd+cwd``: both have ``kd``) is an error rather than a silent drop or a double count.
At most one part may replace the default task loss, the evaluator or ``forward_networks``.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

from torch import Tensor, nn

from .base import ChannelInfo, DistillMethod, MissingKeys, StepContext


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


class TermConflict(ValueError):
    """Two parts of a combined method returned a term with the same name."""


def _overrides(cls: Type[DistillMethod], name: str) -> bool:
    """True when a class below DistillMethod in ``cls``'s MRO defines ``name``."""
    owner = next(c for c in cls.__mro__ if name in c.__dict__)
    return owner is not DistillMethod


def _single_owner(classes: Sequence[Type[DistillMethod]], hook: str, spec: str) -> Optional[Type[DistillMethod]]:
    owners = [c for c in classes if _overrides(c, hook)]
    if len(owners) > 1:
        raise ValueError("--kd-method %s: %s and %s both define %s; such methods cannot be combined"
                         % (spec, owners[0].name, owners[1].name, hook))
    return owners[0] if owners else None


class MethodSpec:
    """The parsed ``--kd-method`` value: the method classes and what they need together."""

    def __init__(self, text: str) -> None:
        names = [n.strip() for n in str(text).split("+") if n.strip()]
        if not names:
            raise ValueError("--kd-method is empty; use one of the registered names (e.g. none, kd, af_dcd)")
        if len(set(names)) != len(names):
            raise ValueError("--kd-method %s names a method twice" % text)
        self.text = "+".join(names)
        self.classes: List[Type[DistillMethod]] = [get_method_class(n) for n in names]
        if len(self.classes) > 1:
            if any(not c.trains_student or c.teacher_mode != "eval" for c in self.classes):
                raise ValueError("%s: methods with a special training mode cannot be combined" % self.text)
            for hook in ("task_loss", "forward_networks", "build_evaluator", "from_networks"):
                _single_owner(self.classes, hook, self.text)

    @property
    def trains_student(self) -> bool:
        return all(c.trains_student for c in self.classes)

    @property
    def teacher_mode(self) -> str:
        return "train" if any(c.teacher_mode == "train" for c in self.classes) else "eval"

    def teachers_needed(self, args: argparse.Namespace) -> int:
        return max(c.teachers_needed(args) for c in self.classes)

    def teacher_is_student(self, args: argparse.Namespace) -> bool:
        return any(c.teacher_is_student(args) for c in self.classes)

    def streams_needed(self, args: argparse.Namespace) -> Tuple[str, ...]:
        streams = ["labeled"]
        for c in self.classes:
            streams += [s for s in c.streams_needed(args) if s not in streams]
        return tuple(streams)

    def missing_keys_allowed(self, args: argparse.Namespace, role: str) -> Optional[MissingKeys]:
        found = [m for m in (c.missing_keys_allowed(args, role) for c in self.classes) if m is not None]
        if len(found) > 1:
            raise ValueError("--kd-method %s: two parts declare missing checkpoint keys for the %s" % (self.text, role))
        return found[0] if found else None

    def build_evaluator(self, args: argparse.Namespace, num_classes: int):
        owner = _single_owner(self.classes, "build_evaluator", self.text) or self.classes[0]
        return owner.build_evaluator(args, num_classes)

    def build(self, args: argparse.Namespace, student_info: Optional[ChannelInfo],
              teacher_infos: Sequence[ChannelInfo]) -> DistillMethod:
        parts = [c.from_networks(args, student_info, teacher_infos) for c in self.classes]
        return parts[0] if len(parts) == 1 else CombinedMethod(parts)


class CombinedMethod(DistillMethod):
    """``--kd-method a+b``: the union of several methods' terms; a name returned twice is an error."""

    def __init__(self, methods: List[DistillMethod]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(methods)
        self.name = "+".join(m.name for m in methods)
        self.num_teachers = max(m.num_teachers for m in methods)
        self.student_stages = any(m.student_stages for m in methods)
        classes = [type(m) for m in methods]
        self._task_owner = _owner_index(classes, "task_loss")
        self._network_owner = _owner_index(classes, "forward_networks")

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "CombinedMethod":
        raise TypeError("build combined methods with losses.parse_spec(text).build(...)")

    def set_task_criterion(self, criterion) -> None:
        super().set_task_criterion(criterion)
        for m in self.parts:
            m.set_task_criterion(criterion)

    def forward_networks(self, nets: Any, batch, iteration: int) -> StepContext:
        owner = self.parts[self._network_owner] if self._network_owner is not None else None
        return owner.forward_networks(nets, batch, iteration) if owner else super().forward_networks(nets, batch, iteration)

    def task_loss(self, ctx: StepContext) -> Dict[str, Tensor]:
        owner = self.parts[self._task_owner] if self._task_owner is not None else None
        return owner.task_loss(ctx) if owner else super().task_loss(ctx)

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        terms: Dict[str, Tensor] = {}
        source: Dict[str, str] = {}
        for m in self.parts:
            for k, v in m(ctx).items():
                if k in terms:
                    raise TermConflict(
                        "--kd-method %s: %s and %s both return the term '%s' (it would count twice); drop one "
                        "of them or set that term's weight to 0 in one (e.g. --lambda-kd applies to both)"
                        % (self.name, source[k], m.name, k))
                terms[k], source[k] = v, m.name
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

    def before_train(self, run) -> None:
        for m in self.parts:
            m.before_train(run)

    def after_step(self, run, iteration: int, values: Dict[str, float]) -> None:
        for m in self.parts:
            m.after_step(run, iteration, values)

    def after_train(self, run) -> None:
        for m in self.parts:
            m.after_train(run)

    def describe(self) -> str:
        return " + ".join(m.describe() for m in self.parts)


def _owner_index(classes: Sequence[Type[DistillMethod]], hook: str) -> Optional[int]:
    owners = [i for i, c in enumerate(classes) if _overrides(c, hook)]
    return owners[0] if owners else None


def parse_spec(text: str) -> MethodSpec:
    return MethodSpec(text)


# Shorthands for one-off calls on parsed flags (method-level tests build methods with these).
def teachers_needed(args: argparse.Namespace) -> int:
    return MethodSpec(args.kd_method).teachers_needed(args)


def build_method(args: argparse.Namespace, student_info: Optional[ChannelInfo],
                 teacher_info: Optional[ChannelInfo]) -> DistillMethod:
    return MethodSpec(args.kd_method).build(args, student_info, [teacher_info] if teacher_info else [])
