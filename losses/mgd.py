"""MGD: Multi-Granularity Distillation for lightweight semi-supervised segmentation.

Paper: J. Qin, J. Wu, M. Li, X. Xiao, M. Zheng, X. Wang, "Multi-Granularity Distillation Scheme Towards
Lightweight Semi-Supervised Semantic Segmentation", ECCV 2022 (arXiv 2208.10169).
Official code: JayQine/MGD-SSSS@9309105, the loss inline in ``exp.*/train.py`` (+ ``criterion.py``,
``mask_gen.py``, ``furnace/seg_opr/loss_opr.py:ProbOhemCrossEntropy2d``).

Two frozen teachers trained with CPS (``--kd-method cps``): T_D (deep, ``--teacher-*``, ResNet-101)
and T_W (wide, ``--teacher2-*``, WRN-50-2 layout). Streams: labeled (x_l, y), unlabeled u0 and
unlabeled2 u1; CutMix mask M (``losses/cutmix.py``), x_mix = u0 (1 - M) + u1 M. Logits are the
networks' input-size logits, ``f`` the 256-ch decoder feature (``head_feat``):

    y_T = argmax[(1 - M) T(u0) + M T(u1)],  l_T = argmax T(x_l)          for T in {T_W, T_D}
    L_sup = CE(S(x_l), y)   (Cityscapes: OHEM, ``--task-loss ohem``)           [task_loss]
    L_pc  = CE(S(x_mix), y_TW) + CE(S(x_mix), y_TD) + CE(S(x_l), l_TW) + CE(S(x_l), l_TD)
    L_sem = lambda_1 (g / B) sum_{b,c} | mean_hw S(x_mix) - mean_hw T_D(x_mix) |
    L_cont = lambda_2 mean_{b,i,j} (A_S - A_TW)^2,  A = cosine self-similarity of the 7x7-pooled f(x_mix)
    L_student = L_sup + L_pc + L_sem + L_cont

One process reproduces the official multi-GPU run at the same global batch B: the official code
sums L_sem over each GPU's g = 2 images and averages the terms over GPUs, so the sum here is scaled
by g / B (``--mgd-sem-images-per-gpu g``; 1 when B = g as in the golden cases). Its gradient
reaches the weights divided by the number of GPUs W once more (a non-differentiable all-reduce
followed by DDP averaging), while weight decay is not: use lr / W and weight decay x W (the
recipes do: VOC R18 lr 0.0025, wd 4e-4). OHEM's ``min_kept`` counts the pixels of the process batch.
Teachers run under no_grad in TRAIN mode (batch statistics, as the official code;
``--mgd-teacher-bn eval`` for running statistics); each stream is its own forward pass.

Differences from the official code:
- u0 and u1 are independent draws (their own shuffles); officially u0[i] and u1[i] were two
  augmentations of the same image (both samplers seeded alike, TorchSemiSeg #60/#78).
- The logged total is L_student; the official log also added gradient-free teacher-side terms and
  ran the student on u0/u1 (which also moves its BN running statistics): ``--mgd-official-total``
  does that and logs ``official_total``.
- ``--mgd-content-eps`` (default 0 = official) guards the cosine against an all-zero pooled region.
"""
from __future__ import annotations

import argparse
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ChannelInfo, DistillMethod, StepContext, StreamBatch, add_flag, pick
from .cutmix import StepMasks, mix
from .registry import register
from .task import OhemCrossEntropyLoss

IGNORE = 255


def hard_labels(logits: Tensor) -> Tensor:
    return logits.argmax(1)


def mixed_labels(logits_u0: Tensor, logits_u1: Tensor, mask: Tensor) -> Tensor:
    return hard_labels(mix(logits_u0, logits_u1, mask))


def cosine_self_similarity(feat: Tensor, pool: int = 7, eps: float = 0.0) -> Tensor:
    """(B, C, H, W) -> (B, P, P) with P = pool^2: cosine of every pair of pooled regions."""
    q = F.adaptive_avg_pool2d(feat, (pool, pool)).flatten(2)
    norm = q.norm(p=2, dim=-2)
    sim = q.transpose(-2, -1).matmul(q)
    return sim / (norm.unsqueeze(-1) + eps) / (norm.unsqueeze(-2) + eps)


def semantic_sensitive(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """sum_{b,c} | mean_hw S - mean_hw T | (raw logits)."""
    return (student_logits.mean(dim=(2, 3)) - teacher_logits.mean(dim=(2, 3))).abs().sum()


def mgd_loss(s_logits_mix: Tensor, s_feat_mix: Tensor, s_logits_lab: Tensor, gts: Tensor, mask: Tensor,
             tw_logits_u0: Tensor, tw_logits_u1: Tensor, td_logits_u0: Tensor, td_logits_u1: Tensor,
             tw_logits_mix: Tensor, tw_feat_mix: Tensor, td_logits_mix: Tensor, tw_logits_lab: Tensor,
             td_logits_lab: Tensor, lambda_1: float, lambda_2: float,
             sup_criterion: Optional[Callable[[Tensor, Tensor], Tensor]] = None, ignore_index: int = IGNORE,
             pool: int = 7, sem_scale: float = 1.0, content_eps: float = 0.0,
             s_logits_u0: Optional[Tensor] = None, s_logits_u1: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """Every term of one MGD step (names of the official code); ``student_total`` is what trains."""
    def ce(logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, ignore_index=ignore_index)

    sup = sup_criterion or ce
    tw_lab, td_lab = tw_logits_lab.detach(), td_logits_lab.detach()
    y_tw = mixed_labels(tw_logits_u0.detach(), tw_logits_u1.detach(), mask)
    y_td = mixed_labels(td_logits_u0.detach(), td_logits_u1.detach(), mask)
    out = {"loss_sup": sup(s_logits_lab, gts),
           "pc_unl_TW": ce(s_logits_mix, y_tw), "pc_unl_TD": ce(s_logits_mix, y_td),
           "pc_lab_TW": ce(s_logits_lab, hard_labels(tw_lab)), "pc_lab_TD": ce(s_logits_lab, hard_labels(td_lab))}
    out["sem_sens_loss"] = lambda_1 * sem_scale * semantic_sensitive(s_logits_mix, td_logits_mix.detach())
    sim_s = cosine_self_similarity(s_feat_mix, pool, content_eps)
    sim_t = cosine_self_similarity(tw_feat_mix.detach(), pool, content_eps)
    out["content_loss"] = lambda_2 * F.mse_loss(sim_s, sim_t)
    out["student_total"] = (out["loss_sup"] + out["pc_unl_TW"] + out["pc_unl_TD"] + out["pc_lab_TW"]
                            + out["pc_lab_TD"] + out["sem_sens_loss"] + out["content_loss"])
    if s_logits_u0 is not None and s_logits_u1 is not None:
        y_s = mixed_labels(s_logits_u0.detach(), s_logits_u1.detach(), mask)
        l_s = hard_labels(s_logits_lab.detach())
        out["loss_sup_r"] = sup(tw_lab, gts)
        out["loss_sup_3"] = sup(td_lab, gts)
        out["consist_loss1"] = out["pc_unl_TW"] + ce(tw_logits_mix.detach(), y_s)
        out["consist_loss2"] = out["pc_unl_TD"] + ce(td_logits_mix.detach(), y_s)
        out["consist_loss_u"] = out["consist_loss1"] + out["consist_loss2"]
        out["consist_loss_s1"] = out["pc_lab_TW"] + ce(tw_lab, l_s)
        out["consist_loss_s2"] = out["pc_lab_TD"] + ce(td_lab, l_s)
        out["consist_loss_s"] = out["consist_loss_s1"] + out["consist_loss_s2"]
        out["consist_loss"] = out["consist_loss_u"] + out["consist_loss_s"]
        out["loss"] = (out["loss_sup"] + out["loss_sup_r"] + out["loss_sup_3"] + out["consist_loss"]
                       + out["sem_sens_loss"] + out["content_loss"])
    return out


def ohem_criterion(ignore_index: int, thresh: float, min_kept: int) -> Callable[[Tensor, Tensor], Tensor]:
    return OhemCrossEntropyLoss(ignore_index, thresh, min_kept)


@register("mgd")
class MGD(DistillMethod):
    name = "mgd"
    num_teachers = 2
    streams = ("labeled", "unlabeled", "unlabeled2")

    def __init__(self, lambda_1: float = 0.002, lambda_2: float = 100.0, images_per_gpu: int = 2,
                 teacher_bn: str = "train", content_eps: float = 0.0, official_total: bool = False,
                 seed: int = 0, pool: int = 7) -> None:
        super().__init__()
        if teacher_bn not in ("train", "eval"):
            raise ValueError("--mgd-teacher-bn must be 'train' (official) or 'eval', got %r" % teacher_bn)
        if lambda_1 < 0 or lambda_2 < 0 or images_per_gpu < 1 or content_eps < 0:
            raise ValueError("MGD needs --mgd-lambda-sem/--mgd-lambda-content >= 0, --mgd-sem-images-per-gpu >= 1 "
                             "and --mgd-content-eps >= 0")
        self.lambda_1, self.lambda_2 = float(lambda_1), float(lambda_2)
        self.images_per_gpu = int(images_per_gpu)
        self.teacher_bn = teacher_bn
        self.content_eps = float(content_eps)
        self.official_total = bool(official_total)
        self.pool = int(pool)
        self.masks = StepMasks(seed)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_flag(parser, "--mgd-lambda-sem", dest="mgd_lambda_sem", type=float, default=None,
                 help="MGD lambda_1, image-level semantic-sensitive L1 vs T_D (VOC R18 0.002, MBV2 0.0005, City 0.001)")
        add_flag(parser, "--mgd-lambda-content", dest="mgd_lambda_content", type=float, default=None,
                 help="MGD lambda_2, region-level content-aware MSE vs T_W (default 100; VOC MBV2 50)")
        add_flag(parser, "--mgd-sem-images-per-gpu", dest="mgd_sem_images_per_gpu", type=int, default=None,
                 help="images per GPU of the official run whose L_sem sum is reproduced (default 2)")
        add_flag(parser, "--mgd-teacher-bn", dest="mgd_teacher_bn", choices=["train", "eval"], default=None,
                 help="teacher BatchNorm: batch statistics under no_grad (official, default) or running statistics")
        add_flag(parser, "--mgd-content-eps", dest="mgd_content_eps", type=float, default=None,
                 help="epsilon of the content loss's cosine (default 0 = official)")
        add_flag(parser, "--mgd-official-total", dest="mgd_official_total", action="store_true", default=False,
                 help="also run the student on u0/u1 and log the official total (teacher-side terms included)")

    @classmethod
    def from_args(cls, args, student_info, teacher_info) -> "MGD":
        return cls(lambda_1=pick(getattr(args, "mgd_lambda_sem", None), 0.002),
                   lambda_2=pick(getattr(args, "mgd_lambda_content", None), 100.0),
                   images_per_gpu=pick(getattr(args, "mgd_sem_images_per_gpu", None), 2),
                   teacher_bn=pick(getattr(args, "mgd_teacher_bn", None), "train"),
                   content_eps=pick(getattr(args, "mgd_content_eps", None), 0.0),
                   official_total=bool(getattr(args, "mgd_official_total", False)), seed=getattr(args, "seed", 0))

    @classmethod
    def from_networks(cls, args, student_info, teacher_infos) -> "MGD":
        for who, info in [("student", student_info)] + [("teacher%s" % ("2" if i else ""), t)
                                                        for i, t in enumerate(teacher_infos)]:
            if not info or "head_feat" not in info:
                raise ValueError("--kd-method mgd needs 'head_feat' (the decoder feature) from the %s; use "
                                 "--*-model deeplabv3plus_cps" % who)
        return cls.from_args(args, student_info, teacher_infos[0] if teacher_infos else None)

    # ------------------------------------------------------------------ one step
    def forward_networks(self, nets, batch: Dict[str, StreamBatch], iteration: int) -> StepContext:
        labeled, u0, u1 = batch["labeled"].images, batch["unlabeled"].images, batch["unlabeled2"].images
        if u0.shape != u1.shape:
            raise ValueError("MGD: the two unlabeled batches differ in shape %s vs %s (use one crop size)"
                             % (tuple(u0.shape), tuple(u1.shape)))
        for teacher in nets.teachers:
            teacher.train(self.teacher_bn == "train")
        mask = self.masks(u0.shape[0], u0.shape[-2:], iteration).to(u0.device)
        mixed = mix(u0, u1, mask)
        td, tw = 0, 1
        extra = {"mask": mask,
                 "td_u0": nets.teacher(td, u0).logits, "td_u1": nets.teacher(td, u1).logits,
                 "tw_u0": nets.teacher(tw, u0).logits, "tw_u1": nets.teacher(tw, u1).logits}
        if self.official_total:
            with torch.no_grad():
                extra["s_u0"] = nets.student(u0).logits
                extra["s_u1"] = nets.student(u1).logits
        extra["s_mix"] = nets.student(mixed)
        extra["tw_mix"] = nets.teacher(tw, mixed)
        extra["td_mix"] = nets.teacher(td, mixed)
        student_lab = nets.student(labeled)
        extra["tw_lab"] = nets.teacher(tw, labeled).logits
        extra["td_lab"] = nets.teacher(td, labeled).logits
        return StepContext(student=student_lab, labels=batch["labeled"].labels, iteration=iteration,
                           max_iterations=nets.max_iterations, teacher=None, teachers=[],
                           images=labeled, ignore_index=nets.ignore_index, batch=batch, extra=extra)

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        e = ctx.extra
        batch_size = ctx.student.logits.shape[0]
        task = self.__dict__.get("task_criterion")
        if self.official_total and task is not None:     # the teachers' supervised terms, logged only
            def sup(logits: Tensor, labels: Tensor) -> Tensor:
                return task([logits], labels)["task"]
        else:
            def sup(logits: Tensor, labels: Tensor) -> Tensor:
                return logits.sum() * 0.0                 # L_sup itself is the task loss (task_loss)
        out = mgd_loss(e["s_mix"].logits, e["s_mix"].head_feat, ctx.student.logits, ctx.labels, e["mask"],
                       e["tw_u0"], e["tw_u1"], e["td_u0"], e["td_u1"], e["tw_mix"].logits, e["tw_mix"].head_feat,
                       e["td_mix"].logits, e["tw_lab"], e["td_lab"], self.lambda_1, self.lambda_2,
                       sup_criterion=sup, ignore_index=ctx.ignore_index,
                       pool=self.pool, sem_scale=self.images_per_gpu / max(batch_size, 1),
                       content_eps=self.content_eps, s_logits_u0=e.get("s_u0"), s_logits_u1=e.get("s_u1"))
        terms = {"pc_unl_tw": out["pc_unl_TW"], "pc_unl_td": out["pc_unl_TD"], "pc_lab_tw": out["pc_lab_TW"],
                 "pc_lab_td": out["pc_lab_TD"], "sem": out["sem_sens_loss"], "content": out["content_loss"]}
        if "loss" in out:
            e["official_total"] = out["loss"].detach()
        return terms

    def after_optimizer_step(self, ctx: StepContext) -> Dict[str, Tensor]:
        return {"official_total": ctx.extra["official_total"]} if "official_total" in ctx.extra else {}

    def describe(self) -> str:
        return "mgd(lambda sem/content=%g/%g, sem images/GPU %d, teacher BN %s)" % (
            self.lambda_1, self.lambda_2, self.images_per_gpu, self.teacher_bn)
