"""The SAGAN holistic (adversarial) term shared by SKD, IFVD and CWD.

Official code: winycg/CIRKD@2d8ad0f losses/adv.py:CriterionAdvForG, CriterionAdv and
utils/sagan.py:Discriminator. The differences from it are listed in ``losses/skd.py``'s docstring
(one list for the term, whichever method uses it).
"""
from __future__ import annotations

import argparse
import copy
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .base import StepContext, add_flag, pick


def adv_g_loss(d_out_student: Tensor) -> Tensor:
    """Generator (student) side of the hinge GAN: -mean D(z_s)."""
    return -d_out_student.mean()


def adv_d_loss(d_out_student: Tensor, d_out_teacher: Tensor, kind: str = "hinge") -> Tensor:
    """Discriminator loss: teacher maps are 'real', student maps 'fake'."""
    if d_out_student.shape != d_out_teacher.shape:
        raise ValueError("adv_d_loss: discriminator outputs differ in shape %s vs %s"
                         % (tuple(d_out_student.shape), tuple(d_out_teacher.shape)))
    if kind == "hinge":
        return F.relu(1.0 - d_out_teacher).mean() + F.relu(1.0 + d_out_student).mean()
    if kind == "wgan":
        return d_out_student.mean() - d_out_teacher.mean()
    raise ValueError("adv_d_loss: kind must be 'hinge' or 'wgan', got %r" % kind)


def _l2normalize(v: Tensor, eps: float = 1e-12) -> Tensor:
    return v / (v.norm() + eps)


class SNConv2d(nn.Conv2d):
    """Conv2d with spectral normalisation: one power iteration per call (SAGAN style)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        rows = self.weight.shape[0]
        self.register_buffer("weight_u", _l2normalize(self.weight.detach().new_empty(rows).normal_(0, 1)))
        self.register_buffer("weight_v", _l2normalize(self.weight.detach().new_empty(self.weight[0].numel()).normal_(0, 1)))

    def forward(self, x: Tensor) -> Tensor:
        w_mat = self.weight.view(self.weight.shape[0], -1)
        with torch.no_grad():
            v = _l2normalize(torch.mv(w_mat.t(), self.weight_u))
            u = _l2normalize(torch.mv(w_mat, v))
            self.weight_u.copy_(u)
            self.weight_v.copy_(v)
        sigma = torch.dot(u, torch.mv(w_mat, v))
        return self._conv_forward(x, self.weight / sigma, self.bias)


class SelfAttention(nn.Module):
    """SAGAN self-attention: x + gamma * (value @ softmax(query^T key)^T), gamma starts at 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        query = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        key = self.key_conv(x).view(b, -1, h * w)
        attention = torch.softmax(torch.bmm(query, key), dim=-1)          # (B, N, N) over key positions
        value = self.value_conv(x).view(b, -1, h * w)
        out = torch.bmm(value, attention.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x


class Discriminator(nn.Module):
    """CIRKD's SAGAN discriminator on logit maps (preprocess mode 1 = BatchNorm)."""

    min_size = 64   # four stride-2 convs, then a valid 4x4 conv

    def __init__(self, num_classes: int, conv_dim: int = 64) -> None:
        super().__init__()
        self.preprocess = nn.BatchNorm2d(num_classes)
        self.l1 = nn.Sequential(SNConv2d(num_classes, conv_dim, 4, 2, 1), nn.LeakyReLU(0.1))
        self.l2 = nn.Sequential(SNConv2d(conv_dim, conv_dim * 2, 4, 2, 1), nn.LeakyReLU(0.1))
        self.l3 = nn.Sequential(SNConv2d(conv_dim * 2, conv_dim * 4, 4, 2, 1), nn.LeakyReLU(0.1))
        self.attn1 = SelfAttention(conv_dim * 4)
        self.l4 = nn.Sequential(SNConv2d(conv_dim * 4, conv_dim * 8, 4, 2, 1), nn.LeakyReLU(0.1))
        self.attn2 = SelfAttention(conv_dim * 8)
        self.last = nn.Conv2d(conv_dim * 8, 1, 4)

    def forward(self, logits: Tensor) -> Tensor:
        if min(logits.shape[-2:]) < self.min_size:
            raise ValueError("SKD holistic (adversarial) term: the discriminator needs logits of at least "
                             "%dx%d, got %dx%d (crop size / output stride); use a larger --crop-size or "
                             "switch the term off with --lambda-adv 0 --lambda-d 0"
                             % (self.min_size, self.min_size, logits.shape[-2], logits.shape[-1]))
        out = self.l3(self.l2(self.l1(self.preprocess(logits))))
        out = self.attn2(self.l4(self.attn1(out)))
        return self.last(out)


class HolisticDistillation(nn.Module):
    """The adversarial term: D, its Adam optimizer (saved via extra state), the G and D losses."""

    def __init__(self, num_classes: int, lambda_adv: float, lambda_d: float, lr: float = 4e-4,
                 betas=(0.9, 0.99), conv_dim: int = 64) -> None:
        super().__init__()
        self.lambda_adv = float(lambda_adv)
        self.lambda_d = float(lambda_d)
        self.discriminator = Discriminator(num_classes, conv_dim)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=tuple(betas))

    def _run_d(self, logits: Tensor) -> Tensor:
        dtype = self.discriminator.last.weight.dtype
        if logits.device.type not in ("cuda", "cpu"):
            return self.discriminator(logits.to(dtype))
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self.discriminator(logits.to(dtype))

    def generator_loss(self, student_logits: Tensor) -> Tensor:
        """lambda_adv * L_G; gradients reach the student logits but not D's parameters."""
        params = list(self.discriminator.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            return self.lambda_adv * adv_g_loss(self._run_d(student_logits))
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)

    def discriminator_step(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """One Adam step on lambda_d * L_D (inputs detached). Returns the weighted loss."""
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = self.lambda_d * adv_d_loss(self._run_d(student_logits.detach()),
                                              self._run_d(teacher_logits.detach()))
            loss.backward()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            world = dist.get_world_size()
            for p in self.discriminator.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.div_(world)
        self.optimizer.step()
        return loss.detach()

    def get_extra_state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        if not isinstance(state, dict) or "optimizer" not in state:
            raise ValueError("SKD discriminator: the saved method state has no optimizer entry "
                             "(checkpoint from another version?)")
        # deepcopy: Optimizer.load_state_dict keeps tensors that already sit on the right device,
        # so loading a live state_dict would otherwise share Adam's moments between two modules.
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))


def add_adv_args(parser: argparse.ArgumentParser) -> None:
    """The shared --lambda-adv / --lambda-d flags (SKD, IFVD and CWD runs use them)."""
    add_flag(parser, "--lambda-adv", dest="lambda_adv", type=float, default=None,
             help="weight of the adversarial (holistic) term for the student (default 0.001 for skd/ifvd/cwd); "
                  "needs logits >= 64x64")
    add_flag(parser, "--lambda-d", dest="lambda_d", type=float, default=None,
             help="weight of the discriminator loss, trained by its own Adam (default 0.1 for skd/ifvd/cwd)")


def resolve_adv(args: argparse.Namespace, default_adv: float = 0.001, default_d: float = 0.1):
    return (float(pick(getattr(args, "lambda_adv", None), default_adv)),
            float(pick(getattr(args, "lambda_d", None), default_d)))


class AdversarialMixin:
    """Gives a method the optional holistic term (``self.holistic``, None when both weights are 0)."""

    holistic: Optional[HolisticDistillation]

    def init_adv(self, num_classes: int, lambda_adv: float, lambda_d: float) -> None:
        self.holistic = (HolisticDistillation(num_classes, lambda_adv, lambda_d)
                         if (lambda_adv != 0 or lambda_d != 0) else None)

    def adv_terms(self, ctx: StepContext) -> Dict[str, Tensor]:
        if self.holistic is None or self.holistic.lambda_adv == 0:
            return {}
        return {"adv_G": self.holistic.generator_loss(ctx.student.logits)}

    def after_optimizer_step(self, ctx: StepContext) -> Dict[str, Tensor]:
        if self.holistic is None or self.holistic.lambda_d == 0:
            return {}
        return {"adv_D": self.holistic.discriminator_step(ctx.student.logits, ctx.teacher.logits)}

    def student_optimizer_parameters(self) -> List[nn.Parameter]:
        return [p for name, p in self.named_parameters()
                if p.requires_grad and not name.startswith("holistic.")]
