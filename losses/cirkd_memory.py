"""CIRKD memory terms: class-wise queues of teacher embeddings and the pixel-to-pixel /
pixel-to-region similarity distillation against them (helpers of ``losses/cirkd.py``).

Official code: winycg/CIRKD@2d8ad0f losses/cirkd_memory.py:StudentSegContrast (unchanged at
dab64db). Term (2) of CIRKD.

    t = normalise(t_feat), s = normalise(head(s_feat))        over channels
    l = labels resized to (h, w) with `nearest`
    enqueue (no grad) from t and l: per image, per present class k:
        region queue Q_r[k, ptr_r[k]] = normalise(mean of t over class k); ptr_r[k] += 1 (mod M_r)
        pixel queue  Q_p[k, ...]      = 16 teacher pixels (see ``fix_pixel_enqueue``)
    anchors A_s, A_t = s, t at the non-ignored positions (b, y, x order)
    keys_p = [Q_p[0, I_p]; ...; Q_p[K-1, I_p]], I_p = first k_p of a permutation of M_p slots
    L_mp = T_c^2 * batchmean KL(softmax(A_t keys_p^T / (tau T_c)) || softmax(A_s keys_p^T / (tau T_c)))
           (``kd_loss`` of losses/kd.py on the (anchors x keys) similarity logits)
    L_mr = the same with the region queue (k_r slots)

Differences from the official code (intentional):
- A batch whose labels are all ignored returns a graph-connected 0 for both terms (official: NaN,
  the mean of an empty tensor; gradients are zero either way). The enqueue still runs (no-op).
- ``fix_pixel_enqueue`` (default False = official): the official code takes the first K' entries
  of a permutation of 0..n_k-1 and uses them directly as flat positions of the whole map, so a
  class queue receives mostly top-left pixels of any class. True takes them among class k's positions.
- Only the queues of the active terms are built (``use_pixel`` / ``use_region``).
- Every random draw can be injected: ``enqueue_pixel_pos["b{b}_c{k}"]`` (the K' positions the
  official code draws for image b, class k), ``pixel_index`` (I_p), ``region_index`` (I_r); otherwise
  ``torch.randperm`` on ``generator`` (or torch's default generator), in the official order.
- The projection head uses plain ``BatchNorm2d`` (official: ``SyncBatchNorm`` always); the training
  script converts the whole method to SyncBN when distributed, which gives the official behaviour.
- Computed in float32 with autocast disabled (float64 when the module is float64).
- The similarity KD folds 1/(tau T_c) into the sampled key matrix and takes the anchors in chunks with
  the scores recomputed in backward (``losses/cirkd_relation.py``): same value, a fraction of the memory.
- A label value outside [0, K) other than the ignore index is a clear error.

Distributed training: like the official ``concat_all_gather``, every rank gathers the teacher keys and
labels of all ranks (rank order) and enqueues the gathered batch into its own queues. The training
script wraps the method in DDP (broadcast_buffers=True, the projection head has parameters), so at
the next forward every rank's queues and pointers are overwritten by rank 0's, as in the official
code: rank 0's memory is the one that persists, other ranks' pixel draws only affect their keys of
the current step. The anchors (and so the loss) stay per-GPU.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .cirkd_relation import chunked_anchor_kl


@torch.no_grad()
def gather_from_all_ranks(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` of every rank along dim 0 (rank order); the tensor itself when not distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def draw_device(generator: Optional[torch.Generator]) -> torch.device:
    """Draws happen where the generator lives (CPU for torch's default generator, as officially)."""
    return generator.device if generator is not None else torch.device("cpu")


def sample_keys(queue: Tensor, index: Tensor) -> Tensor:
    """[Q[0, I]; Q[1, I]; ...; Q[K-1, I]]: (K * len(I), C), class-major, the same slots for every class."""
    return queue[:, index, :].reshape(-1, queue.shape[-1])


class CIRKDMemoryLoss(nn.Module):
    """``(L_mp, L_mr) = CIRKDMemoryLoss(...)(s_feat, t_feat, labels)``; an inactive term gives None.

    Buffers ``pixel_queue`` (K, M_p, Ct), ``pixel_queue_ptr`` (K,), ``region_queue`` (K, M_r, Ct),
    ``region_queue_ptr`` (K,) (only those of the active terms) are saved in ``state_dict()``.
    ``pixel_contrast_size`` / ``region_contrast_size`` are per class (the official constructor
    arguments; the training flags are totals, see ``losses/cirkd.py``).
    """

    def __init__(self, num_classes: int, s_channels: int, t_channels: int,
                 pixel_memory_size: int = 20000, region_memory_size: int = 2000,
                 pixel_contrast_size: int = 216, region_contrast_size: int = 54,
                 tau: float = 0.1, kd_tau: float = 1.0, ignore_index: int = -1,
                 pixel_update_freq: int = 16, fix_pixel_enqueue: bool = False,
                 use_pixel: bool = True, use_region: bool = True,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        if not (use_pixel or use_region):
            raise ValueError("CIRKDMemoryLoss: at least one of the pixel/region terms must be active")
        if num_classes < 1:
            raise ValueError("CIRKDMemoryLoss: num_classes must be >= 1 (got %d)" % num_classes)
        if tau <= 0 or kd_tau <= 0:
            raise ValueError("--contrast-temperature and --contrast-kd-temperature must be > 0 (got %g, %g)"
                             % (tau, kd_tau))
        if use_pixel and not 1 <= pixel_contrast_size <= pixel_memory_size:
            raise ValueError("CIRKD: %d pixel keys per class cannot be drawn from %d slots; lower "
                             "--pixel-contrast-size or raise --pixel-memory-size" % (pixel_contrast_size, pixel_memory_size))
        if use_region and not 1 <= region_contrast_size <= region_memory_size:
            raise ValueError("CIRKD: %d region keys per class cannot be drawn from %d slots; lower "
                             "--region-contrast-size or raise --region-memory-size" % (region_contrast_size, region_memory_size))
        if pixel_update_freq < 1:
            raise ValueError("--pixel-update-freq must be >= 1 (got %d)" % pixel_update_freq)
        self.num_classes = int(num_classes)
        self.pixel_memory_size = int(pixel_memory_size)
        self.region_memory_size = int(region_memory_size)
        self.pixel_contrast_size = int(pixel_contrast_size)
        self.region_contrast_size = int(region_contrast_size)
        self.tau = float(tau)
        self.kd_tau = float(kd_tau)
        # kd_loss(a_s K^T / tau, a_t K^T / tau, T_c) in chunks (tests/naive_losses.py has the direct form).
        self.anchor_kl_fn = chunked_anchor_kl
        self.ignore_index = int(ignore_index)
        self.pixel_update_freq = int(pixel_update_freq)
        self.fix_pixel_enqueue = bool(fix_pixel_enqueue)
        self.use_pixel = bool(use_pixel)
        self.use_region = bool(use_region)

        self.project_head = nn.Sequential(
            nn.Conv2d(s_channels, t_channels, 1, bias=False),
            nn.BatchNorm2d(t_channels),
            nn.ReLU(True),
            nn.Conv2d(t_channels, t_channels, 1, bias=False),
        )
        # Official init: random normal rows, L2-normalised; pointers 0 (region drawn first, as there).
        if self.use_region:
            self.register_buffer("region_queue", F.normalize(
                torch.randn(num_classes, region_memory_size, t_channels, generator=generator), p=2, dim=2))
            self.register_buffer("region_queue_ptr", torch.zeros(num_classes, dtype=torch.long))
        if self.use_pixel:
            self.register_buffer("pixel_queue", F.normalize(
                torch.randn(num_classes, pixel_memory_size, t_channels, generator=generator), p=2, dim=2))
            self.register_buffer("pixel_queue_ptr", torch.zeros(num_classes, dtype=torch.long))

    def extra_repr(self) -> str:
        return ("K=%d, M_p=%d, M_r=%d, k_p=%d, k_r=%d, tau=%g, T_c=%g, pixel=%s, region=%s, fix_pixel_enqueue=%s"
                % (self.num_classes, self.pixel_memory_size, self.region_memory_size, self.pixel_contrast_size,
                   self.region_contrast_size, self.tau, self.kd_tau, self.use_pixel, self.use_region,
                   self.fix_pixel_enqueue))

    def _pixel_positions(self, name: str, count: int, injected: Optional[Dict[str, Tensor]],
                         generator: Optional[torch.Generator]) -> Tensor:
        """The official pi[:K']: K' = min(n_k, pixel_update_freq) entries of a permutation of 0..n_k-1."""
        take = min(count, self.pixel_update_freq)
        if injected is not None:
            if name not in injected:
                raise KeyError("CIRKD: injected enqueue_pixel_pos has no entry %r (keys: %s)" % (name, sorted(injected)))
            perm = torch.as_tensor(injected[name]).long().reshape(-1)
            if perm.numel() != take:
                raise ValueError("CIRKD: injected enqueue_pixel_pos[%r] has %d entries, expected min(%d, %d) = %d"
                                 % (name, perm.numel(), count, self.pixel_update_freq, take))
            return perm
        return torch.randperm(count, generator=generator, device=draw_device(generator))[:take]

    @torch.no_grad()
    def enqueue(self, keys: Tensor, labels: Tensor, enqueue_pixel_pos: Optional[Dict[str, Tensor]] = None,
                generator: Optional[torch.Generator] = None) -> None:
        """Push normalised teacher embeddings ``keys`` (B, C, h, w) with ``labels`` (B, h, w) into the queues."""
        batch, channels = keys.shape[:2]
        flat_keys = keys.reshape(batch, channels, -1)
        flat_labels = labels.reshape(batch, -1)
        for b in range(batch):
            this_feat, this_label = flat_keys[b], flat_labels[b]
            for k in torch.unique(this_label).tolist():
                if k == self.ignore_index:
                    continue
                if not 0 <= k < self.num_classes:
                    raise ValueError("CIRKD: label value %d is outside [0, %d) and is not the ignore index %d; "
                                     "check the dataset's label mapping" % (k, self.num_classes, self.ignore_index))
                positions = (this_label == k).nonzero()[:, 0]
                if self.use_region:
                    ptr = int(self.region_queue_ptr[k])
                    region = this_feat[:, positions].mean(dim=1)
                    self.region_queue[k, ptr, :] = F.normalize(region, p=2, dim=0).to(self.region_queue.dtype)
                    self.region_queue_ptr[k] = (ptr + 1) % self.region_memory_size
                if self.use_pixel:
                    perm = self._pixel_positions("b%d_c%d" % (b, k), positions.numel(), enqueue_pixel_pos, generator)
                    perm = perm.to(positions.device)
                    chosen = positions[perm] if self.fix_pixel_enqueue else perm
                    feat = F.normalize(this_feat[:, chosen].t(), p=2, dim=1).to(self.pixel_queue.dtype)
                    take = feat.shape[0]
                    ptr = int(self.pixel_queue_ptr[k])
                    if ptr + take >= self.pixel_memory_size:
                        self.pixel_queue[k, self.pixel_memory_size - take:, :] = feat
                        self.pixel_queue_ptr[k] = 0
                    else:
                        self.pixel_queue[k, ptr:ptr + take, :] = feat
                        self.pixel_queue_ptr[k] = ptr + take

    def _index(self, given: Optional[Tensor], memory_size: int, contrast_size: int,
               generator: Optional[torch.Generator], device: torch.device) -> Tensor:
        if given is None:
            given = torch.randperm(memory_size, generator=generator, device=draw_device(generator))[:contrast_size]
        given = torch.as_tensor(given).long().reshape(-1)
        if given.numel() != contrast_size or bool((given < 0).any()) or bool((given >= memory_size).any()):
            raise ValueError("CIRKD: injected key index must hold %d slots in [0, %d), got %s"
                             % (contrast_size, memory_size, given.tolist()))
        return given.to(device)

    def forward(self, s_feat: Tensor, t_feat: Tensor, labels: Tensor,
                enqueue_pixel_pos: Optional[Dict[str, Tensor]] = None,
                pixel_index: Optional[Tensor] = None, region_index: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        if s_feat.shape[-2:] != t_feat.shape[-2:] or s_feat.shape[0] != t_feat.shape[0]:
            raise ValueError("CIRKD memory: student head_feat %s and teacher head_feat %s must have the same "
                             "batch and spatial size" % (tuple(s_feat.shape), tuple(t_feat.shape)))
        if labels.dim() != 3 or labels.shape[0] != s_feat.shape[0]:
            raise ValueError("CIRKD memory: labels must be (B, H, W) with B = %d, got %s"
                             % (s_feat.shape[0], tuple(labels.shape)))
        dtype = self.project_head[0].weight.dtype
        with torch.autocast(device_type=s_feat.device.type, enabled=False):
            s_proj = self.project_head(s_feat.to(dtype))
            s_hat = F.normalize(s_proj, p=2, dim=1)
            t_hat = F.normalize(t_feat.detach().to(dtype), p=2, dim=1)
            height, width = s_hat.shape[-2:]
            small = F.interpolate(labels[:, None].float(), size=(height, width), mode="nearest")[:, 0].long()

            self.enqueue(gather_from_all_ranks(t_hat), gather_from_all_ranks(small), enqueue_pixel_pos, generator)

            valid = small.reshape(-1) != self.ignore_index
            if not bool(valid.any()):
                zero = s_hat.sum() * 0.0
                return (zero if self.use_pixel else None), (zero if self.use_region else None)
            channels = s_hat.shape[1]
            anchors_s = s_hat.permute(0, 2, 3, 1).reshape(-1, channels)[valid]
            anchors_t = t_hat.permute(0, 2, 3, 1).reshape(-1, channels)[valid]

            results: List[Optional[Tensor]] = []
            for active, queue_name, given, memory_size, contrast_size in (
                    (self.use_pixel, "pixel_queue", pixel_index, self.pixel_memory_size, self.pixel_contrast_size),
                    (self.use_region, "region_queue", region_index, self.region_memory_size, self.region_contrast_size)):
                if not active:
                    results.append(None)
                    continue
                queue = getattr(self, queue_name)
                index = self._index(given, memory_size, contrast_size, generator, queue.device)
                keys = sample_keys(queue, index).to(dtype)
                results.append(self.anchor_kl_fn(anchors_s, anchors_t, keys, self.tau, self.kd_tau))
        return results[0], results[1]
