"""CutMix box masks of CPS / MGD (``mask_gen.py:BoxMaskGenerator``), shared by ``cps`` and ``mgd``.

``BoxMaskGenerator(prop_range=(0.25, 0.5), n_boxes=3, random_aspect_ratio=True, prop_by_area=True,
within_bounds=True, invert=True)``, as both official training scripts configure it. Per mask n and
box k, from three draws ``a ~ U(prop_range)``, ``u ~ U(0, 1)``, ``p ~ U(0, 1)^2``:

    h_frac = a^u / sqrt(K),  w_frac = a^(1-u) / sqrt(K)          (a = 0 gives an empty box)
    size = round([h_frac H, w_frac W])  (half to even),  pos = round(([H, W] - size) * p)
    mask starts at 0 and every box toggles its pixels (x -> 1 - x);  x_mix = u0 (1 - M) + u1 M

Draw order (as numpy's): all ``mask_props`` (N, K), then ``aspect_u`` (N, K), then ``pos_u`` (N, K, 2).
In training the draws come from a ``torch.Generator`` seeded by (seed, iteration, micro-batch) for
the GLOBAL batch, of which each process takes its own rows: the masks do not depend on the number
of processes, and a resumed run draws the same masks (the official code drew them in loader
workers from the unseeded global numpy state).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

PROP_RANGE = (0.25, 0.5)
N_BOXES = 3


def draw_box_params(n: int, n_boxes: int = N_BOXES, prop_range: Tuple[float, float] = PROP_RANGE,
                    generator: Optional[torch.Generator] = None) -> Dict[str, np.ndarray]:
    low, high = float(prop_range[0]), float(prop_range[1])
    props = torch.rand(n, n_boxes, generator=generator, dtype=torch.float64) * (high - low) + low
    aspect = torch.rand(n, n_boxes, generator=generator, dtype=torch.float64)
    pos = torch.rand(n, n_boxes, 2, generator=generator, dtype=torch.float64)
    return {"mask_props": props.numpy(), "aspect_u": aspect.numpy(), "pos_u": pos.numpy()}


def box_mask(n: int, hw: Sequence[int], draws: Dict[str, np.ndarray], n_boxes: int = N_BOXES) -> Tensor:
    """(n, 1, H, W) float32 masks from explicit draws (official arithmetic, numpy float64)."""
    shape = (int(hw[0]), int(hw[1]))
    mask_props = np.asarray(draws["mask_props"], dtype=np.float64).reshape(n, n_boxes)
    aspect_u = np.asarray(draws["aspect_u"], dtype=np.float64).reshape(n, n_boxes)
    pos_u = np.asarray(draws["pos_u"], dtype=np.float64).reshape(n, n_boxes, 2)
    zero = mask_props == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        y_props = np.exp(aspect_u * np.log(mask_props))
        x_props = mask_props / y_props
    fac = np.sqrt(1.0 / n_boxes)
    y_props = y_props * fac
    x_props = x_props * fac
    y_props[zero] = 0
    x_props[zero] = 0
    sizes = np.round(np.stack([y_props, x_props], axis=2) * np.array(shape)[None, None, :])
    positions = np.round((np.array(shape) - sizes) * pos_u)
    rectangles = np.append(positions, positions + sizes, axis=2)
    masks = np.zeros((n, 1) + shape)
    for i, boxes in enumerate(rectangles):
        for y0, x0, y1, x1 in boxes:
            masks[i, 0, int(y0):int(y1), int(x0):int(x1)] = 1 - masks[i, 0, int(y0):int(y1), int(x0):int(x1)]
    return torch.from_numpy(masks.astype(np.float32))


def step_masks(n_local: int, hw: Sequence[int], seed: int, iteration: int, micro: int, rank: int, world: int,
               n_boxes: int = N_BOXES, prop_range: Tuple[float, float] = PROP_RANGE) -> Tensor:
    """This process's masks of one (micro-)step: rows ``rank*n_local ...`` of the global batch's masks."""
    generator = torch.Generator().manual_seed((int(seed) * 1000003 + int(iteration) * 101 + int(micro)) % (2 ** 63))
    draws = draw_box_params(n_local * world, n_boxes, prop_range, generator)
    rows = slice(rank * n_local, (rank + 1) * n_local)
    return box_mask(n_local, hw, {k: v[rows] for k, v in draws.items()}, n_boxes)


class StepMasks:
    """The masks of each (micro-)step of a run: ``masks(n_local, hw, iteration)``; calls within one
    iteration are its micro-batches (``--accum-steps``), each with its own draws."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._last = (0, -1)         # (iteration, micro-batch index) of the previous call

    def __call__(self, n_local: int, hw: Sequence[int], iteration: int) -> Tensor:
        micro = self._last[1] + 1 if self._last[0] == iteration else 0
        self._last = (iteration, micro)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world = 0, 1
        return step_masks(n_local, hw, self.seed, iteration, micro, rank, world)


def mix(first: Tensor, second: Tensor, mask: Tensor) -> Tensor:
    """``first * (1 - M) + second * M`` (M = 1 takes ``second``)."""
    mask = mask.to(device=first.device, dtype=first.dtype)
    return first * (1 - mask) + second * mask
