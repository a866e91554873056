"""MasKD: Masked Distillation with Receptive Tokens (segmentation variant, two stages).

Paper: T. Huang, Y. Zhang, S. You, F. Wang, C. Qian, J. Cao, C. Xu, "Masked Distillation with
Receptive Tokens", ICLR 2023 (arXiv 2205.14589).
Official code: hunto/MasKD@b5af34f segmentation/losses/maskd.py:dice_coeff, MaskModule, MasKDLoss;
stage 1 segmentation/train_mask_module.py, stage 2 segmentation/train_maskd.py.

Tokens W (T x C, C = number of classes) turn a logit map z (B x C x h x w) into T soft masks
    m_{b,t,p} = sigmoid(sum_c W_{t,c} z_{b,c,p})
Stage 1 (``--kd-method maskd_tokens``; teacher frozen but in train() mode, only W is optimised):
    out = z_t * sum_t m_t;   D = mean over b and ordered pairs t != t' of 2<m_t, m_t'> / (|m_t'|^2 + |m_t|^2 + 2e-12)
    L_1 = CE(up(out), y) + 0.4 CE(up(aux_t), y) + D        (the aux term is a constant, logged only)
Stage 2 (``--kd-method maskd``; W loaded from ``--pretrained-mask`` and frozen, masks from the teacher map):
    L(z_s, z_t) = 1/2 * 1/(B T C) * sum_{b,t,c} [sum_p m^2 (z_s - z_t)^2] / (sum_p m + 1e-5)
    L_2 = lambda_maskd * [L(z_s, z_t) + 0.4 L(aux_s, aux_t)]      (aux pair only when both nets have it)
Stage-1 recipe (train_mask_module.py, to be set on the CLI): SGD lr 0.1, momentum 0.9, weight decay
1e-3, poly 0.9, 10000 iterations, batch 16. Stage 2: lambda 1, the CIRKD student recipe (wd 5e-4).

Token file (``MasKDTokens.save_tokens`` / ``export_state``, loaded by ``--pretrained-mask``): a plain
state dict ``{"mask_token": float32 tensor (T, C)}`` (the official MaskModule state dict, so the
released Cityscapes tokens load as they are), written atomically, loadable with weights_only=True.

Differences from the official code (intentional):
- The 19 channels and 8 tokens hard-coded in both scripts are arguments (``num_classes``, ``--num-tokens``).
- The official ``--lambda-kd`` of train_maskd.py is ``--lambda-maskd`` here, because ``--lambda-kd`` is
  SegKD's shared pixel-wise KL weight; MasKD has no KL term (combine ``kd+maskd`` to add one).
- ``--maskd-aux-weight`` (0.4 literal officially) and ``--maskd-dice-weight`` (1, implicit) are flags.
- Stage 2: the tokens are a frozen buffer, so no unused gradient accumulates on them (same numbers);
  a missing, unreadable or mis-shaped token file is a clear error (officially a torch.load failure).
- Stage 1 saves the token file at every save of the loop (``export_state``); the official "best" file
  was chosen by the unmasked teacher's mIoU, which only tracks BN-statistic drift.
- Computed in float32 with autocast disabled (float64 when given float64).
"""
from __future__ import annotations

import argparse
import os
from typing import Dict, Optional

import torch
from torch import Tensor, nn

from utils.checkpoint import atomic_save

from .base import ChannelInfo, DistillMethod, StepContext, add_flag, pick
from .registry import register
from .common import as_float, require_teacher
from .task import SegCrossEntropyLoss

TOKEN_KEY = "mask_token"


def token_masks(tokens: Tensor, logits: Tensor) -> Tensor:
    """(B, T, h, w) = sigmoid(W . z_p) for every pixel p (no bias, no scaling)."""
    batch, channels, height, width = logits.shape
    if tokens.shape[1] != channels:
        raise ValueError("MasKD: tokens have %d channels but the logits have %d classes"
                         % (tokens.shape[1], channels))
    attn = tokens.to(logits.dtype) @ logits.reshape(batch, channels, height * width)
    return attn.sigmoid().reshape(batch, -1, height, width)


def masked_distillation_loss(student_logits: Tensor, teacher_logits: Tensor, tokens: Tensor) -> Tensor:
    """1/2 * mean_{b,t,c} [sum_p m^2 (z_s - z_t)^2] / (sum_p m + 1e-5), masks from the teacher map."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError("MasKD: student logits %s and teacher logits %s must have the same shape"
                         % (tuple(student_logits.shape), tuple(teacher_logits.shape)))
    student_logits = as_float(student_logits)
    teacher_logits = as_float(teacher_logits.detach()).to(student_logits.dtype)
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        masks = token_masks(tokens.detach(), teacher_logits)                 # B, T, h, w
        diff = (student_logits - teacher_logits).unsqueeze(1) * masks.unsqueeze(2)   # B, T, C, h, w
        per_channel = diff.pow(2).sum((3, 4)) / (masks.sum((2, 3)).unsqueeze(-1) + 1e-5)
        return 0.5 * per_channel.mean()


def dice_diversity(masks: Tensor) -> Tensor:
    """Mean Dice coefficient over images and ordered pairs of different masks (B, T, h, w)."""
    flat = masks.flatten(2)                                    # B, T, P
    inner = flat @ flat.transpose(1, 2)                        # B, T, T: <v_t, v_t'>
    norms = flat.pow(2).sum(-1) + 1e-12                        # B, T
    dice = 2 * inner / (norms.unsqueeze(1) + norms.unsqueeze(2))
    tokens = masks.shape[1]
    off_diagonal = 1.0 - torch.eye(tokens, dtype=dice.dtype, device=dice.device)
    return (dice * off_diagonal).sum() / (off_diagonal.sum() * masks.shape[0])


def save_token_file(path: str, tokens: Tensor) -> None:
    """Write ``{"mask_token": float32 (T, C)}`` atomically (temporary file renamed over ``path``)."""
    atomic_save({TOKEN_KEY: tokens.detach().to("cpu", torch.float32).clone()}, path)


def load_token_file(path: Optional[str], num_tokens: int, num_classes: int) -> Tensor:
    """The (T, C) tokens of a stage-1 file, checked strictly against --num-tokens and the class count."""
    if not path or path == "None":
        raise ValueError("--kd-method maskd needs --pretrained-mask PATH: the token file written by stage 1 "
                         "(--kd-method maskd_tokens) or the released MasKD tokens")
    if not os.path.isfile(path):
        raise FileNotFoundError("--pretrained-mask %s does not exist; train the tokens first with "
                                "--kd-method maskd_tokens" % path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError("--pretrained-mask %s is not a readable token file (%s)" % (path, exc)) from exc
    if not isinstance(state, dict) or set(state) != {TOKEN_KEY} or not torch.is_tensor(state[TOKEN_KEY]):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError("--pretrained-mask %s must hold exactly {'%s': tensor} (a stage-1 token file), found %s"
                         % (path, TOKEN_KEY, keys))
    tokens = state[TOKEN_KEY]
    if tuple(tokens.shape) != (num_tokens, num_classes):
        raise ValueError("--pretrained-mask %s holds tokens of shape %s but this run needs (%d, %d) "
                         "(--num-tokens x number of classes); use tokens trained for this dataset"
                         % (path, tuple(tokens.shape), num_tokens, num_classes))
    return tokens.float()


def add_maskd_args(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "--pretrained-mask", dest="pretrained_mask", type=str, default=None,
             help="maskd: token file from stage 1 (--kd-method maskd_tokens); mandatory for maskd")
    add_flag(parser, "--num-tokens", dest="num_tokens", type=int, default=None,
             help="maskd/maskd_tokens: number of receptive tokens (default 8)")
    add_flag(parser, "--lambda-maskd", dest="lambda_maskd", type=float, default=None,
             help="maskd: weight of the masked logit distillation (default 1.0; official --lambda-kd)")
    add_flag(parser, "--maskd-aux-weight", dest="maskd_aux_weight", type=float, default=None,
             help="maskd/maskd_tokens: weight of the aux-head pair (default 0.4)")
    add_flag(parser, "--maskd-dice-weight", dest="maskd_dice_weight", type=float, default=None,
             help="maskd_tokens: weight of the Dice diversity loss (default 1.0)")


def check_logits_channels(info: Optional[ChannelInfo], num_classes: int, who: str) -> None:
    if info is not None and info.get("logits", num_classes) != num_classes:
        raise ValueError("MasKD: the %s's logits have %d channels but the dataset has %d classes"
                         % (who, info["logits"], num_classes))


@register("maskd")
class MasKD(DistillMethod):
    """``--kd-method maskd`` (stage 2): masked logit distillation with frozen stage-1 tokens."""

    def __init__(self, mask_token: Tensor, lambda_maskd: float = 1.0, aux_weight: float = 0.4,
                 use_aux: bool = True) -> None:
        super().__init__()
        if mask_token.dim() != 2:
            raise ValueError("MasKD: mask_token must be (num_tokens, num_classes), got %s" % (tuple(mask_token.shape),))
        if lambda_maskd < 0 or aux_weight < 0:
            raise ValueError("--lambda-maskd and --maskd-aux-weight must be >= 0 (got %g, %g)" % (lambda_maskd, aux_weight))
        # A buffer: frozen, never in the optimizer, saved with the method's state.
        self.register_buffer(TOKEN_KEY, mask_token.detach().clone())
        self.lambda_maskd = float(lambda_maskd)
        self.aux_weight = float(aux_weight)
        self.use_aux = bool(use_aux) and self.aux_weight != 0

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_maskd_args(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "MasKD":
        num_classes = int(args.num_classes)
        check_logits_channels(student_info, num_classes, "student")
        check_logits_channels(teacher_info, num_classes, "teacher")
        tokens = load_token_file(getattr(args, "pretrained_mask", None),
                                 int(pick(getattr(args, "num_tokens", None), 8)), num_classes)
        both_aux = "aux_logits" in student_info and teacher_info is not None and "aux_logits" in teacher_info
        return cls(tokens, lambda_maskd=pick(getattr(args, "lambda_maskd", None), 1.0),
                   aux_weight=pick(getattr(args, "maskd_aux_weight", None), 0.4), use_aux=both_aux)

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        terms = {"maskd": self.lambda_maskd * masked_distillation_loss(
            ctx.student.logits, ctx.teacher.logits, self.mask_token)}
        if self.use_aux:
            if not (ctx.student.has("aux_logits") and ctx.teacher.has("aux_logits")):
                raise ValueError("MasKD: built with the aux pair but the student or teacher output has no aux_logits")
            terms["maskd_aux"] = self.lambda_maskd * self.aux_weight * masked_distillation_loss(
                ctx.student.aux_logits, ctx.teacher.aux_logits, self.mask_token)
        return terms

    def describe(self) -> str:
        return "maskd(tokens=%s, lambda_maskd=%g, aux=%s)" % (
            "x".join(map(str, self.mask_token.shape)), self.lambda_maskd, self.aux_weight if self.use_aux else "off")


@register("maskd_tokens")
class MasKDTokens(DistillMethod):
    """``--kd-method maskd_tokens`` (stage 1): learn the receptive tokens on the frozen teacher.

    The loop runs the teacher in train() mode under no_grad, does not run or optimise the student,
    and optimises ``student_optimizer_parameters()`` = the tokens. ``export_state(path)`` writes the
    token file that stage 2 loads with ``--pretrained-mask``.
    """

    teacher_mode = "train"
    trains_student = False

    def __init__(self, num_classes: int, num_tokens: int = 8, aux_weight: float = 0.4,
                 dice_weight: float = 1.0, ignore_index: int = -1, mask_token: Optional[Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        if num_tokens < 2:
            raise ValueError("--num-tokens must be >= 2 for the Dice diversity loss (got %d)" % num_tokens)
        if mask_token is None:
            mask_token = torch.randn(num_tokens, num_classes, generator=generator) * 0.01   # N(0, 0.01^2)
        elif tuple(mask_token.shape) != (num_tokens, num_classes):
            raise ValueError("MasKD tokens: initial mask_token %s must be (%d, %d)"
                             % (tuple(mask_token.shape), num_tokens, num_classes))
        self.mask_token = nn.Parameter(mask_token.detach().clone())
        self.aux_weight = float(aux_weight)
        self.dice_weight = float(dice_weight)
        self.ignore_index = int(ignore_index)
        self.criterion = SegCrossEntropyLoss(ignore_index=self.ignore_index)

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        add_maskd_args(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace, student_info: ChannelInfo,
                  teacher_info: Optional[ChannelInfo]) -> "MasKDTokens":
        num_classes = int(args.num_classes)
        check_logits_channels(teacher_info, num_classes, "teacher")
        return cls(num_classes, num_tokens=int(pick(getattr(args, "num_tokens", None), 8)),
                   aux_weight=pick(getattr(args, "maskd_aux_weight", None), 0.4),
                   dice_weight=pick(getattr(args, "maskd_dice_weight", None), 1.0),
                   ignore_index=int(pick(getattr(args, "ignore_index", None), -1)))

    def masked_logits(self, teacher_logits: Tensor):
        """(z_t * sum_t m_t, masks) for the teacher logits (gradients flow into the tokens only)."""
        teacher_logits = as_float(teacher_logits.detach()).to(self.mask_token.dtype)
        with torch.autocast(device_type=teacher_logits.device.type, enabled=False):
            masks = token_masks(self.mask_token, teacher_logits)
            return teacher_logits * masks.sum(1, keepdim=True), masks

    def forward(self, ctx: StepContext) -> Dict[str, Tensor]:
        require_teacher(ctx, self.name)
        out, masks = self.masked_logits(ctx.teacher.logits)
        with torch.autocast(device_type=out.device.type, enabled=False):
            terms = {"task": self.criterion(out, ctx.labels),
                     "dice": self.dice_weight * dice_diversity(masks)}
            if self.aux_weight and ctx.teacher.has("aux_logits"):
                # Constant w.r.t. the tokens; kept for logging parity with train_mask_module.py.
                terms["teacher_aux"] = self.aux_weight * self.criterion(
                    as_float(ctx.teacher.aux_logits.detach()).to(out.dtype), ctx.labels)
        return terms

    def save_tokens(self, path: str) -> None:
        """Write the token file stage 2 loads (``{"mask_token": float32 (T, C)}``)."""
        save_token_file(path, self.mask_token)

    def export_state(self, path: str) -> None:
        """What the loop calls at each save of a method that does not train the student."""
        self.save_tokens(path)

    def describe(self) -> str:
        return "maskd_tokens(tokens=%s, aux=%g, dice=%g)" % (
            "x".join(map(str, self.mask_token.shape)), self.aux_weight, self.dice_weight)
