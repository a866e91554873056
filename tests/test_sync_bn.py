"""CPUSyncBatchNorm over 2 gloo processes equals BatchNorm2d over the whole batch."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from e2e_common import free_port
from utils.sync_bn import CPUSyncBatchNorm, convert_sync_batchnorm


def _worker(rank, port, x, w_out, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    bn = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3)), torch.device("cpu"))
    part = x[rank:rank + 1].clone().requires_grad_(True)
    y = bn(part)
    loss = (y * w_out[rank:rank + 1]).sum()
    loss.backward()
    # Plain numpy arrays: a tensor would travel as a shared-memory handle that the parent unpickles
    # after this worker may already have exited (FileNotFoundError in resource_sharer).
    queue.put((rank,) + tuple(t.detach().numpy().copy() for t in (y, part.grad, bn[0].weight.grad,
                                                                   bn[0].running_mean)))
    dist.destroy_process_group()


def test_cpu_sync_bn_matches_full_batch_bn():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 5)
    w_out = torch.randn(2, 3, 4, 5)
    ref_bn = nn.BatchNorm2d(3)
    xr = x.clone().requires_grad_(True)
    y_ref = ref_bn(xr)
    (y_ref * w_out).sum().backward()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, x, w_out, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted([queue.get(timeout=120) for _ in procs], key=lambda r: r[0])
    results = [(r[0],) + tuple(torch.from_numpy(a) for a in r[1:]) for r in results]
    for p in procs:
        p.join(60)
    y = torch.cat([r[1] for r in results])
    gx = torch.cat([r[2] for r in results])
    gw = results[0][3] + results[1][3]          # DDP would average; the sum of local grads is the full grad
    assert torch.allclose(y, y_ref.detach(), atol=1e-5)
    assert torch.allclose(gx, xr.grad, atol=1e-5)
    assert torch.allclose(gw, ref_bn.weight.grad, atol=1e-5)
    assert torch.allclose(results[0][4], ref_bn.running_mean, atol=1e-6)
    assert isinstance(convert_sync_batchnorm(nn.BatchNorm2d(2), torch.device("cpu")), CPUSyncBatchNorm)
