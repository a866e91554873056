"""DKD: Decomposed Knowledge Distillation for class-incremental semantic segmentation.

Paper: D. Baek, Y. Oh, S. Lee, J. Lee, B. Ham, "Decomposed Knowledge Distillation for
Class-Incremental Semantic Segmentation", NeurIPS 2022 (arXiv 2210.05941).
Official code: cvlab-yonsei/DKD@fb4693f ``trainer/trainer_voc.py`` (``_train_epoch`` of
``Trainer_base`` / ``Trainer_incremental``), ``models/loss.py`` (WBCELoss, KDLoss, ACLoss).

Sigmoid logits z (channel 0 = the auxiliary head, channel c = class c), at step t with n_old old
and n_new new classes; BCE_p(x, y) = -[p y log s(x) + (1 - y) log(1 - s(x))], means over batch
and every pixel (void pixels count as negatives, as officially):

    L_mbce = sum_{c new} mean BCE_p(z_c, 1[label = c])          (p = pos_weight)
    L_ac   = mean BCE_1(z_0, 0)                                  (the aux head says "no" everywhere)
    L_kd   = sum_{c <= n_old} mean BCE_1(z_c, s(z_old_c))        (full resolution)
    L_pos  = sum_{c <= n_old} mean BCE_1(P_c, s(P_old_c)),  L_neg likewise with Q
             (P / Q = positive / negative parts of the logits at feature resolution, no bias)
    step 0: w_mbce L_mbce + w_ac L_ac;  step t: + w_kd L_kd + w_pos L_pos + w_neg L_neg   (1, 5, 5, 5, 1)

Differences from the official code: the one-hot targets are built per new class (the official
``label.unique()`` loop indexed by ``id - n_old - 1``, which assumes masked labels; the values are
the same); nothing else.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import DistillMethod, MissingKeys, StepContext, add_flag, pick
from .registry import register


def weighted_bce(logits: Tensor, target: Tensor, pos_weight: float = 1.0) -> Tensor:
    """Per-class mean over (N, H, W) of BCE with a positive weight: (N, C, H, W) -> (C,)."""
    weight = torch.full((logits.shape[1], 1, 1), float(pos_weight), dtype=logits.dtype, device=logits.device)
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight, reduction="none")
    return loss.mean(dim=(0, 2, 3))


def dkd_loss(logit: Tensor, label: Tensor, n_old: int, n_new: int, pos_weight: float = 1.0,
             w_mbce: float = 1.0, w_kd: float = 5.0, w_pos: float = 5.0, w_neg: float = 5.0, w_ac: float = 1.0,
             logit_old: Optional[Tensor] = None, pos: Optional[Tensor] = None, neg: Optional[Tensor] = None,
             pos_old: Optional[Tensor] = None, neg_old: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """Every term of one DKD step (official names). Old classes are ids 1..n_old, new ids
    n_old+1..n_old+n_new (channels of the same index); ``*_old`` are the teacher's (step 0: None)."""
    new_ids = torch.arange(n_old + 1, n_old + n_new + 1, device=label.device)
    target = (label.unsqueeze(1) == new_ids.view(1, -1, 1, 1)).to(logit.dtype)
    out = {"loss_mbce_per_class": weighted_bce(logit[:, -n_new:], target, pos_weight)}
    out["loss_ac"] = weighted_bce(logit[:, 0:1], torch.zeros_like(logit[:, 0:1])).sum()
    out["loss_mbce"] = out["loss_mbce_per_class"].sum()
    total = w_mbce * out["loss_mbce"] + w_ac * out["loss_ac"]
    if n_old > 0 and logit_old is not None:
        out["loss_kd_per_class"] = weighted_bce(logit[:, 1:n_old + 1], torch.sigmoid(logit_old[:, 1:].detach()))
        out["loss_dkd_pos_per_class"] = weighted_bce(pos[:, :n_old], torch.sigmoid(pos_old.detach()))
        out["loss_dkd_neg_per_class"] = weighted_bce(neg[:, :n_old], torch.sigmoid(neg_old.detach()))
        for name in ("kd", "dkd_pos", "dkd_neg"):
            out["loss_" + name] = out["loss_%s_per_class" % name].sum()
        total = total + w_kd * out["loss_kd"] + w_pos * out["loss_dkd_pos"] + w_neg * out["loss_dkd_neg"]
    out["total"] = total
    return out


INFO_FILE = "incremental.json"     # task and step of a run folder (checked by the next step)


@register("dkd")
class DKD(DistillMethod):
    """One step of a class-incremental task (``--incremental DATASET:TASK:SETTING --step t``).

    Step 0 trains without a teacher; step t >= 1 distils the step t-1 checkpoint (the teacher, also
    the student's initialisation: only the new head is missing, it is filled from the aux head)."""

    name = "dkd"
    num_teachers = 1

    def __init__(self, n_old: int, n_new: int, pos_weight: float, weights: Dict[str, float]) -> None:
        super().__init__()
        self.n_old, self.n_new = int(n_old), int(n_new)
        self.pos_weight = float(pos_weight)
        self.weights = dict(weights)

    @classmethod
    def teachers_needed(cls, args: argparse.Namespace) -> int:
        return 1 if int(getattr(args, "step", 0) or 0) > 0 else 0

    @classmethod
    def missing_keys_allowed(cls, args: argparse.Namespace, role: str) -> Optional[MissingKeys]:
        step = int(getattr(args, "step", 0) or 0)
        if role != "student" or step == 0:
            return None

        def init(model, missing):
            model.init_novel_classifier()
        return MissingKeys(("cls.%d.weight" % (step + 1), "cls.%d.bias" % (step + 1)), init)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--dkd-pos-weight", dest="dkd_pos_weight", type=float, default=None,
                 help="DKD: positive weight of mBCE (VOC 2 at step 0, 1 after; ADE 35)")
        for name, default in (("mbce", 1), ("kd", 5), ("dkd-pos", 5), ("dkd-neg", 5), ("ac", 1)):
            add_flag(parser, "--dkd-w-%s" % name, dest="dkd_w_%s" % name.replace("-", "_"), type=float,
                     default=None, help="DKD: weight of the %s term (default %g)" % (name, default))

    @classmethod
    def from_args(cls, args, student_info, teacher_info) -> "DKD":
        from datasets.incremental import parse_incremental, step_classes
        dataset, task, _ = parse_incremental(getattr(args, "incremental", None) or "")
        step = int(getattr(args, "step", 0) or 0)
        new, old = step_classes(dataset, task, step)
        default_pos = (2.0 if step == 0 else 1.0) if dataset == "voc" else 35.0
        weights = {k: float(pick(getattr(args, "dkd_w_" + k, None), d))
                   for k, d in (("mbce", 1.0), ("kd", 5.0), ("dkd_pos", 5.0), ("dkd_neg", 5.0), ("ac", 1.0))}
        return cls(len(old), len(new), pick(getattr(args, "dkd_pos_weight", None), default_pos), weights)

    @classmethod
    def check_setup(cls, args: argparse.Namespace) -> None:
        """Step t >= 1 starts from step t-1's checkpoint (teacher and initialisation) of the same task."""
        import json
        import os
        if not getattr(args, "incremental", None):
            raise ValueError("needs --incremental DATASET:TASK:SETTING (e.g. voc:15-1:overlap) and --step")
        step = int(args.step)
        if step == 0:
            return
        teacher = getattr(args, "teacher_pretrained", None)
        if teacher in (None, "", "None"):
            raise ValueError("step %d needs step %d's checkpoint: pass --teacher-pretrained and --student-pretrained "
                             "<step %d folder>/<its final .pth> (the task script does)" % (step, step - 1, step - 1))
        if getattr(args, "student_pretrained", None) in (None, "", "None"):
            raise ValueError("step %d starts from step %d's weights: pass --student-pretrained %s" % (step, step - 1, teacher))
        info = os.path.join(os.path.dirname(os.path.abspath(teacher)), INFO_FILE)
        if os.path.isfile(info):
            with open(info) as handle:
                saved = json.load(handle)
            if saved.get("incremental") != args.incremental or int(saved.get("step", -1)) != step - 1:
                raise ValueError("%s is from %s step %s, not %s step %d: pass step %d's checkpoint of this task"
                                 % (teacher, saved.get("incremental"), saved.get("step"), args.incremental, step - 1,
                                    step - 1))

    @classmethod
    def build_evaluator(cls, args: argparse.Namespace, num_classes: int):
        from datasets.incremental import parse_incremental, step_classes
        from utils.evaluators import IncrementalEvaluator
        dataset, task, _ = parse_incremental(args.incremental)
        new, old = step_classes(dataset, task, int(args.step))
        if not old:         # step 0: every seen class is "old" (DKD reports mIoU_all only)
            return IncrementalEvaluator(num_classes, [0] + new, [])
        return IncrementalEvaluator(num_classes, [0] + old, new)

    def prepare_run(self, run) -> None:
        """DKD-M: the exemplar memory of this step (before the data streams are built)."""
        args = run.args
        if int(getattr(args, "memory_size", 0) or 0) > 0 and int(args.step) > 0:
            from .dkd_memory import build_memory
            args.memory_list = build_memory(args, run.teachers[0] if run.teachers else None, run.device,
                                            write=run.dist.is_main)

    def before_train(self, run) -> None:
        import json
        import os
        args = run.args
        if run.dist.is_main:
            os.makedirs(args.save_dir, exist_ok=True)
            with open(os.path.join(args.save_dir, INFO_FILE), "w") as handle:
                json.dump({"incremental": args.incremental, "step": int(args.step),
                           "head_widths": list(getattr(args, "head_widths", []) or []),
                           "memory_size": int(getattr(args, "memory_size", 0) or 0)}, handle, indent=1)

    def task_loss(self, ctx: StepContext) -> Dict[str, Tensor]:
        return {}      # the supervised term is mBCE, part of forward

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        s, t = ctx.student, ctx.teacher
        w = self.weights
        out = dkd_loss(s.logits.float(), ctx.labels, self.n_old, self.n_new, self.pos_weight, w["mbce"], w["kd"],
                       w["dkd_pos"], w["dkd_neg"], w["ac"],
                       logit_old=t.logits.float() if t is not None else None,
                       pos=s.pos_logits.float(), neg=s.neg_logits.float(),
                       pos_old=t.pos_logits.float() if t is not None else None,
                       neg_old=t.neg_logits.float() if t is not None else None)
        terms = {"mbce": w["mbce"] * out["loss_mbce"], "ac": w["ac"] * out["loss_ac"]}
        if "loss_kd" in out:
            terms.update({"kd": w["kd"] * out["loss_kd"], "dkd_pos": w["dkd_pos"] * out["loss_dkd_pos"],
                          "dkd_neg": w["dkd_neg"] * out["loss_dkd_neg"]})
        return terms

    def describe(self) -> str:
        return "dkd(%d old + %d new classes, pos_weight %g, weights %s)" % (
            self.n_old, self.n_new, self.pos_weight, "/".join("%g" % v for v in self.weights.values()))
