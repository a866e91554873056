"""Throw-away methods and a model that exercise the engine's contract (streams, two teachers,
per-network input adapters, evaluators, hooks, declared-missing keys). ``registered()`` adds them
to the registries for the duration of a ``with`` block; ``RECORD`` collects what the hooks saw."""
from __future__ import annotations

import contextlib
from typing import Dict, List

import torch
from torch import Tensor

from losses.base import DistillMethod, MissingKeys, StepContext
from losses.registry import _REGISTRY, register
from losses.common import kd_loss
from models.deeplabv3 import deeplabv3
from models.meta import IMAGENET_RGB, ModelMeta
from models.registry import _MODELS, register_model
from utils.evaluators import Evaluator

RECORD: Dict[str, list] = {}
RGB_META = ModelMeta(input_norm=IMAGENET_RGB, align_corners=False)


def rgb_deeplabv3(backbone: str, num_class: int = 19, aux: bool = False, norm_layer=torch.nn.BatchNorm2d,
                  head_width=None):
    """DeepLabV3 that declares mmseg-style input (RGB mean/std) and align_corners=False."""
    return deeplabv3(backbone, num_class, aux, norm_layer, head_width)


class TwoStreamsTwoTeachers(DistillMethod):
    """KD from teacher 1 on the labeled images and from teacher 2 on the unlabeled ones."""

    num_teachers = 2
    streams = ("labeled", "unlabeled")

    def __init__(self, teacher_infos: List[dict]) -> None:
        super().__init__()
        self.teacher_infos = teacher_infos
        self.adapter = torch.nn.Conv2d(1, 1, 1)    # a parameter of the method's own, trained with the student

    @classmethod
    def from_args(cls, args, student_info, teacher_info):
        raise AssertionError("the loop must call from_networks")

    @classmethod
    def from_networks(cls, args, student_info, teacher_infos):
        RECORD.setdefault("teacher_infos", []).append([dict(t) for t in teacher_infos])
        return cls(list(teacher_infos))

    def forward_networks(self, nets, batch, iteration: int) -> StepContext:
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        RECORD.setdefault("unlabeled_labels", []).append(bool((unlabeled.labels == -1).all()))
        RECORD.setdefault("pipeline_images", []).append(labeled.images.detach().cpu().clone())
        ctx = StepContext(student=nets.student(labeled.images), labels=labeled.labels, iteration=iteration,
                          max_iterations=nets.max_iterations, teacher=nets.teacher(0, labeled.images),
                          ignore_index=nets.ignore_index, batch=batch)
        ctx.teachers = [ctx.teacher, nets.teacher(1, unlabeled.images)]
        ctx.extra["student_unlabeled"] = nets.student(unlabeled.images)
        return ctx

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        unlabeled_logits = ctx.extra["student_unlabeled"].logits
        scale = self.adapter(unlabeled_logits[:, :1]).mean() * 0.0 + 1.0
        return {"kd_labeled": kd_loss(ctx.student.logits, ctx.teachers[0].logits),
                "kd_unlabeled": scale * kd_loss(unlabeled_logits, ctx.teachers[1].logits)}

    def before_train(self, run) -> None:
        def capture(name):
            def hook(module, args):
                RECORD.setdefault(name, []).append(args[0].detach().cpu().clone())
            return hook
        run.student.pretrained.register_forward_pre_hook(capture("student_input"))
        run.teachers[0].pretrained.register_forward_pre_hook(capture("teacher_input"))
        RECORD.setdefault("hooks", []).append("before_train")

    def after_step(self, run, iteration: int, values: Dict[str, float]) -> None:
        RECORD.setdefault("lrs", []).append((iteration, {g["name"]: g["lr"] for g in run.optimizer.param_groups}))

    def after_train(self, run) -> None:
        RECORD.setdefault("hooks", []).append("after_train")


class ScriptedEvaluator(Evaluator):
    """Reports scripted 'score' values, one per validation, plus two more figures."""

    best_key = "score"
    SCRIPT = [0.5, 0.9, 0.7]

    def __init__(self) -> None:
        self.calls = 0
        self.pixels = 0

    def reset(self, device=None) -> None:
        self.pixels = 0

    def process(self, pred, label) -> None:
        self.pixels += int((label != -1).sum())

    def result(self):
        score = self.SCRIPT[min(self.calls, len(self.SCRIPT) - 1)]
        self.calls += 1
        return {"score": score, "pixels": float(self.pixels), "per_image": [1.0, 2.0]}


class WithScriptedEvaluator(DistillMethod):
    num_teachers = 0

    @classmethod
    def from_args(cls, args, student_info, teacher_info):
        return cls()

    @classmethod
    def build_evaluator(cls, args, num_classes):
        return ScriptedEvaluator()

    def forward(self, ctx):
        return {}


def init_new_classifier(model, keys: List[str]) -> None:
    RECORD.setdefault("initialised", []).append(sorted(keys))
    with torch.no_grad():
        model.head.block[4].weight.fill_(0.25)
        model.head.block[4].bias.zero_()


class NewClassifier(DistillMethod):
    """Starts the student from a checkpoint that lacks the classifier (as an incremental step)."""

    num_teachers = 0

    @classmethod
    def missing_keys_allowed(cls, args, role):
        return MissingKeys(("head.block.4.*",), init_new_classifier) if role == "student" else None

    @classmethod
    def from_args(cls, args, student_info, teacher_info):
        return cls()

    def forward(self, ctx):
        return {}


METHODS = {"_two_streams": TwoStreamsTwoTeachers, "_scripted_eval": WithScriptedEvaluator,
           "_new_classifier": NewClassifier}


@contextlib.contextmanager
def registered():
    RECORD.clear()
    for name, cls in METHODS.items():
        register(name)(cls)
    register_model("deeplabv3_rgb", width_key="head.aspp.b0.0.weight", meta=RGB_META)(rgb_deeplabv3)
    try:
        yield RECORD
    finally:
        for name in METHODS:
            _REGISTRY.pop(name, None)
        _MODELS.pop("deeplabv3_rgb", None)
