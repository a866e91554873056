"""One process, torchrun, the legacy launcher and multi-node, with no collective call when alone.

``init_distributed(local_rank_flag, device)`` reads the launcher's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``; the legacy ``python -m torch.distributed.launch`` also passes
``--local_rank``/``--local-rank``), initialises NCCL on GPU or gloo on CPU only when the world
has more than one process, and picks the device.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(local_rank_flag: Optional[int] = None, device: str = "auto",
                     timeout_s: Optional[float] = None) -> DistInfo:
    """``timeout_s``: how long a collective waits for the other processes before it fails (a stalled
    or dead rank then ends the job instead of hanging it); None keeps torch's default."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", local_rank_flag if local_rank_flag is not None else 0))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        kwargs = {"timeout": datetime.timedelta(seconds=float(timeout_s))} if timeout_s else {}
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", init_method="env://", **kwargs)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if is_dist():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_collective_timeout(exc: BaseException) -> bool:
    """A collective that gave up waiting for another process (gloo/NCCL word it differently)."""
    text = str(exc).lower()
    return any(word in text for word in ("timed out", "timeout", "connection closed by peer",
                                         "connection reset by peer", "watchdog"))
