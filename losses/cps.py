"""CPS: Cross Pseudo Supervision with CutMix (trains the two teachers MGD distils from).

Paper: X. Chen, Y. Yuan, G. Zeng, J. Wang, "Semi-Supervised Semantic Segmentation with Cross Pseudo
Supervision", CVPR 2021 (charlesCXK/TorchSemiSeg). Code followed: the CPS teacher experiments of
JayQine/MGD-SSSS@9309105 (``exp.{voc,city}/*8.{resnet101,wresnet34}_deeplabv3plus/train.py``).

Two branches of the same architecture, both trained: branch 1 is the run's student (its file is the
teacher MGD loads), branch 2 belongs to this method (same model, ``--student-pretrained-base``,
stepped by the same optimizer; it is in the resume file). With x_mix = u0 (1 - M) + u1 M
(``losses/cutmix.py``) and p_k the logits of branch k:

    y_k = argmax[(1 - M) p_k(u0) + M p_k(u1)]         (no grad; train-mode BN, as the official code)
    L = sup(p_1(x_l), y) + sup(p_2(x_l), y) + w_cps [CE(p_1(x_mix), y_2) + CE(p_2(x_mix), y_1)]

``sup`` is the run's task loss (VOC CE; Cityscapes OHEM 0.7, ``--task-loss ohem``); w_cps is
``--cps-weight`` (VOC 1, Cityscapes 5). One process at the official global batch reproduces the
official run with lr / W and weight decay x W (see ``losses/mgd.py``).
Differences from the official code: u0 and u1 are independent draws (officially the same image
twice, TorchSemiSeg #60/#78); the masks are drawn per step from (seed, iteration), see cutmix.py.
"""
from __future__ import annotations

import argparse
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import DistillMethod, StepContext, StreamBatch, add_flag, pick
from .cutmix import StepMasks, mix
from .registry import register


def build_peer(args: argparse.Namespace) -> torch.nn.Module:
    """A second network of the student's architecture that accepts the pipeline's tensors."""
    from datasets import pipeline_of
    from models import get_segmentation_model
    from models.meta import pipeline_norm, set_input_source
    base = getattr(args, "student_pretrained_base", None)
    net = get_segmentation_model(args.student_model, args.student_backbone, num_class=args.num_classes,
                                 aux=bool(getattr(args, "aux", False)),
                                 pretrained_base=None if base in (None, "", "None") else base)
    set_input_source(net, pipeline_norm(pipeline_of(args)))
    return net


@register("cps")
class CPS(DistillMethod):
    name = "cps"
    num_teachers = 0
    streams = ("labeled", "unlabeled", "unlabeled2")

    def __init__(self, peer: torch.nn.Module, cps_weight: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        if cps_weight < 0:
            raise ValueError("--cps-weight must be >= 0, got %g" % cps_weight)
        self.branch2 = peer
        self.cps_weight = float(cps_weight)
        self.masks = StepMasks(seed)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--cps-weight", dest="cps_weight", type=float, default=None,
                 help="CPS: weight of the cross pseudo-label CE (VOC 1, Cityscapes 5; default 1)")

    @classmethod
    def from_args(cls, args, student_info, teacher_info) -> "CPS":
        return cls(build_peer(args), pick(getattr(args, "cps_weight", None), 1.0), getattr(args, "seed", 0))

    def forward_networks(self, nets, batch: Dict[str, StreamBatch], iteration: int) -> StepContext:
        labeled, u0, u1 = batch["labeled"].images, batch["unlabeled"].images, batch["unlabeled2"].images
        mask = self.masks(u0.shape[0], u0.shape[-2:], iteration).to(u0.device)
        with torch.no_grad():
            label_1 = self._pseudo(nets.student(u0).logits, nets.student(u1).logits, mask)
        mixed = mix(u0, u1, mask)
        extra = {"mask": mask, "mixed": mixed, "u0": u0, "u1": u1, "label_1": label_1,
                 "s_mix": nets.student(mixed).logits}
        student = nets.student(labeled)
        return StepContext(student=student, labels=batch["labeled"].labels, iteration=iteration,
                           max_iterations=nets.max_iterations, images=labeled, ignore_index=nets.ignore_index,
                           batch=batch, extra=extra)

    @staticmethod
    def _pseudo(logits_u0: Tensor, logits_u1: Tensor, mask: Tensor) -> Tensor:
        return mix(logits_u0.detach(), logits_u1.detach(), mask).argmax(1)

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        e = ctx.extra
        with torch.no_grad():
            label_2 = self._pseudo(self.branch2(e["u0"]).logits, self.branch2(e["u1"]).logits, e["mask"])
        peer_mix = self.branch2(e["mixed"]).logits
        peer_lab = self.branch2(ctx.images)
        terms = {"cps": self.cps_weight * (F.cross_entropy(e["s_mix"], label_2, ignore_index=ctx.ignore_index)
                                           + F.cross_entropy(peer_mix, e["label_1"], ignore_index=ctx.ignore_index))}
        task = self.__dict__.get("task_criterion")
        if task is not None:
            terms.update({"peer_" + k: v for k, v in task(peer_lab, ctx.labels).items()})
        return terms

    def peer_networks(self):
        return [self.branch2]

    def describe(self) -> str:
        return "cps(weight %g; branch 2 = a second %s)" % (self.cps_weight, getattr(self.branch2, "arch_name", "?"))
