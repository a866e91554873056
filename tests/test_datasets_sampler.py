"""Iteration sampler: determinism, rank split == single process, exact resume, collate."""
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from datasets import IterationSampler, build_dataset, collate
from datasets.synthetic import generate


def batches(sampler):
    items = list(sampler)
    size = sampler.local_batch_size
    return [items[i:i + size] for i in range(0, len(items), size)]


def test_deterministic_and_covers_repeated_list():
    first = list(IterationSampler(num_items=5, global_batch_size=2, max_iterations=10, seed=3))
    second = list(IterationSampler(num_items=5, global_batch_size=2, max_iterations=10, seed=3))
    assert first == second and len(first) == 20
    assert Counter(index for index, _ in first) == {i: 4 for i in range(5)}
    assert len({seed for _, seed in first}) == 20
    other = list(IterationSampler(num_items=5, global_batch_size=2, max_iterations=10, seed=4))
    assert other != first
    partial = Counter(index for index, _ in IterationSampler(num_items=7, global_batch_size=3, max_iterations=3))
    assert sum(partial.values()) == 9 and max(partial.values()) - min(partial.values()) <= 1


def test_rank_split_matches_single_process():
    single = batches(IterationSampler(num_items=13, global_batch_size=4, max_iterations=6, seed=1))
    ranks = [batches(IterationSampler(num_items=13, global_batch_size=4, max_iterations=6, seed=1,
                                      rank=r, world_size=2)) for r in range(2)]
    assert all(len(ranks[r]) == 6 and len(ranks[r][0]) == 2 for r in range(2))
    for t in range(6):
        assert ranks[0][t] + ranks[1][t] == single[t]
    four = [batches(IterationSampler(13, 4, 6, seed=1, rank=r, world_size=4)) for r in range(4)]
    for t in range(6):
        assert [item for r in range(4) for item in four[r][t]] == single[t]


def test_resume_skips_trained_iterations():
    full = list(IterationSampler(num_items=9, global_batch_size=4, max_iterations=5, seed=2, rank=1, world_size=2))
    resumed = IterationSampler(num_items=9, global_batch_size=4, max_iterations=5, seed=2, rank=1, world_size=2,
                               start_iteration=3)
    assert len(resumed) == 4 and list(resumed) == full[3 * 2:]
    assert list(IterationSampler(9, 4, 5, start_iteration=5)) == []


def test_invalid_arguments():
    with pytest.raises(ValueError, match="not divisible"):
        IterationSampler(10, global_batch_size=6, max_iterations=2, world_size=4)
    with pytest.raises(ValueError, match="rank"):
        IterationSampler(10, global_batch_size=4, max_iterations=2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="start_iteration"):
        IterationSampler(10, global_batch_size=4, max_iterations=2, start_iteration=3)
    with pytest.raises(ValueError, match="at least one item"):
        IterationSampler(0, global_batch_size=4, max_iterations=2)


def test_collate():
    batch = [(torch.zeros(3, 4, 5), torch.zeros(4, 5, dtype=torch.long), "a"),
             (torch.ones(3, 4, 5), torch.ones(4, 5, dtype=torch.long), "b")]
    images, labels, names = collate(batch)
    assert images.shape == (2, 3, 4, 5) and labels.shape == (2, 4, 5) and names == ["a", "b"]
    with pytest.raises(ValueError, match="batch size 1"):
        collate([batch[0], (torch.zeros(3, 6, 5), torch.zeros(6, 5, dtype=torch.long), "c")])


def test_loader_two_ranks_see_the_single_process_batches(tmp_path):
    root = generate("camvid", str(tmp_path / "camvid"), num_train=5, num_val=0, size=(36, 48), seed=0)["root"]
    ds = build_dataset("camvid", root, split="train", mode="train", crop_size=(24, 24))

    def loader(rank, world_size):
        sampler = IterationSampler(len(ds), 4, 3, seed=9, rank=rank, world_size=world_size)
        return list(DataLoader(ds, batch_size=4 // world_size, sampler=sampler, collate_fn=collate))

    single = loader(0, 1)
    halves = [loader(r, 2) for r in range(2)]
    for t in range(3):
        assert torch.equal(torch.cat([halves[0][t][0], halves[1][t][0]]), single[t][0])
        assert torch.equal(torch.cat([halves[0][t][1], halves[1][t][1]]), single[t][1])
        assert halves[0][t][2] + halves[1][t][2] == single[t][2]
