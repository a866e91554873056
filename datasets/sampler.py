"""Iteration-based sampling (CIRKD style) that is identical for any number of processes.

CIRKD repeats the image list to ``max_iterations x batch`` items and shuffles it. Here the
same order is defined once for the whole run: position p (0 <= p < max_iterations * B) holds
image ``perm[p] % num_items`` where ``perm`` is a seeded permutation of all positions, i.e. a
shuffle of the repeated list. Global batch t is positions [t*B, (t+1)*B); rank r of W takes
the contiguous slice [t*B + r*B/W, t*B + (r+1)*B/W). Every position also gets an augmentation
seed that depends only on (seed, p), so 1 process with batch B and 2 processes with B/2 see the
same samples with the same crops, and resuming at iteration k continues exactly where it stopped.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Sampler


def position_seed(seed: int, position: int, salt: int = 0) -> int:
    """Augmentation seed of one global position (63-bit, independent of batch layout)."""
    entropy = [int(seed), 0x5E9D, int(position)] + ([int(salt)] if salt else [])
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> np.uint64(1))


class IterationSampler(Sampler):
    """Yields ``(index, sample_seed)`` for this rank, iteration by iteration.

    Use with ``DataLoader(dataset, batch_size=global_batch_size // world_size, sampler=sampler,
    collate_fn=collate)``; ``len(sampler)`` = (max_iterations - start_iteration) * per-rank batch.
    ``salt`` gives a named stream (e.g. ``unlabeled``) its own order and draws from the same seed;
    salt 0 is the labeled stream (the order of earlier SegKD versions).
    """

    def __init__(self, num_items: int, global_batch_size: int, max_iterations: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, start_iteration: int = 0, salt: int = 0) -> None:
        if num_items <= 0:
            raise ValueError("IterationSampler needs at least one item, got num_items=%d" % num_items)
        if global_batch_size <= 0 or max_iterations < 0:
            raise ValueError("global_batch_size must be > 0 and max_iterations >= 0")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError("rank %d is not in 0..world_size-1 (world_size=%d)" % (rank, world_size))
        if global_batch_size % world_size:
            raise ValueError("global batch size %d is not divisible by the world size %d: choose a batch "
                             "that is a multiple of the number of processes" % (global_batch_size, world_size))
        if not 0 <= start_iteration <= max_iterations:
            raise ValueError("start_iteration %d is outside 0..max_iterations (%d)" % (start_iteration,
                                                                                      max_iterations))
        self.num_items = int(num_items)
        self.global_batch_size = int(global_batch_size)
        self.local_batch_size = self.global_batch_size // world_size
        self.max_iterations = int(max_iterations)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.start_iteration = int(start_iteration)
        self.salt = int(salt)
        total = self.max_iterations * self.global_batch_size
        entropy = [self.seed, 0x0DE7] + ([self.salt] if self.salt else [])
        self._permutation = np.random.default_rng(entropy).permutation(total)

    def positions(self, iteration: int) -> range:
        """Global positions this rank reads at 0-based ``iteration``."""
        first = iteration * self.global_batch_size + self.rank * self.local_batch_size
        return range(first, first + self.local_batch_size)

    def item(self, position: int) -> Tuple[int, int]:
        return int(self._permutation[position]) % self.num_items, position_seed(self.seed, position, self.salt)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        for iteration in range(self.start_iteration, self.max_iterations):
            for position in self.positions(iteration):
                yield self.item(position)

    def __len__(self) -> int:
        return (self.max_iterations - self.start_iteration) * self.local_batch_size


def collate(batch: Sequence[Optional[Tuple[torch.Tensor, torch.Tensor, str]]]
            ) -> Optional[Tuple[torch.Tensor, torch.Tensor, List[str]]]:
    """Stack (image, label, name) triples; images of one batch must share a size (val: batch 1).

    ``None`` entries (validation samples skipped by ``--on-bad-sample skip``) are dropped; a batch
    of only ``None`` collates to ``None``."""
    batch = [item for item in batch if item is not None]
    if not batch:
        return None
    images, labels, names = zip(*batch)
    if len({tuple(image.shape) for image in images}) > 1:
        raise ValueError("cannot batch images of different sizes %s (validation uses full images: "
                         "use batch size 1)" % sorted({tuple(image.shape) for image in images}))
    return torch.stack(images), torch.stack(labels), list(names)
