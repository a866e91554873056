"""Synchronised BatchNorm for every backend.

On CUDA, ``torch.nn.SyncBatchNorm`` is used. On CPU (gloo), PyTorch's SyncBatchNorm refuses to
run, so ``CPUSyncBatchNorm`` computes batch statistics over all ranks with two all-reduces in the
forward and two in the backward. State-dict keys are those of ``nn.BatchNorm2d`` either way, so
checkpoints load into plain models.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn


class _SyncBNFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float):
        dims = [0, 2, 3]
        count = torch.tensor([float(x.numel() // x.shape[1])], dtype=torch.float64)
        sums = torch.cat([x.double().sum(dims), (x.double() ** 2).sum(dims), count])
        dist.all_reduce(sums)
        c = x.shape[1]
        n = sums[-1]
        mean = sums[:c] / n
        var = sums[c:2 * c] / n - mean ** 2
        invstd = torch.rsqrt(var.clamp_min(0) + eps)
        xhat = (x - mean.to(x.dtype)[None, :, None, None]) * invstd.to(x.dtype)[None, :, None, None]
        ctx.save_for_backward(xhat, weight, invstd.to(x.dtype), n.to(x.dtype))
        out = xhat * weight[None, :, None, None] + bias[None, :, None, None]
        return out, mean.to(x.dtype), (var * n / (n - 1).clamp_min(1)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor, _gm, _gv):
        xhat, weight, invstd, n = ctx.saved_tensors
        dims = [0, 2, 3]
        grad_bias = grad_out.sum(dims)
        grad_weight = (grad_out * xhat).sum(dims)
        sums = torch.cat([grad_bias, grad_weight]).double()
        dist.all_reduce(sums)
        c = xhat.shape[1]
        g_b, g_w = sums[:c].to(xhat.dtype), sums[c:].to(xhat.dtype)
        grad_x = (weight * invstd)[None, :, None, None] * (
            grad_out - (g_b[None, :, None, None] + xhat * g_w[None, :, None, None]) / n)
        # weight/bias grads are local sums; DDP averages them over ranks like any other grad.
        return grad_x, grad_weight, grad_bias, None


class CPUSyncBatchNorm(nn.BatchNorm2d):
    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        out, mean, unbiased_var = _SyncBNFunction.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            m = self.momentum if self.momentum is not None else 0.1
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(unbiased_var.detach(), alpha=m)
            self.num_batches_tracked += 1
        return out


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm -> synchronised BatchNorm for this device type (keys unchanged)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        out = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out
