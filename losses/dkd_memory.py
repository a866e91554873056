"""DKD-M's exemplar memory, built before step t >= 1 (``DKD.prepare_run``; official ``utils/memory.py``).

Candidates: step t-1's memory (from step t-1's ``memory.json``, t >= 2) followed by every training
image of step t-1 with its label set (masked as at step t-1, minus background; from step 2 on the
teacher = step t-1 model pseudo-labels background pixels whose best class sigmoid is >= 0.9).
Selection: ``datasets.incremental.sample_memory`` with the candidate permutation and the class
order drawn from ``numpy.random.default_rng(seed + t)``. Written to ``<save-dir>/memory.json`` as
``{"step_1": {...}, ..., "step_t": {"memory_candidates": [[image, labels], ...], "memory_list": [...]}}``.

Difference from the official code: label sets come from each image's test-time view (short side to
the crop, centre crop) instead of a random training crop, so the memory is reproducible.
"""
from __future__ import annotations

import json
import os
from typing import List, Optional

import numpy as np
import torch


def build_memory(args, teacher: Optional[torch.nn.Module], device: torch.device, write: bool = True) -> List[str]:
    from datasets import get_dataset_info
    from datasets.incremental import (build_incremental_dataset, candidate_labels, parse_incremental, sample_memory,
                                      split_cache_dir, step_classes)
    dataset, task, _ = parse_incremental(args.incremental)
    step = int(args.step)
    _, old = step_classes(dataset, task, step)
    previous = []
    folder = os.path.dirname(os.path.abspath(args.teacher_pretrained))
    saved = {}
    if step >= 2:
        path = os.path.join(folder, "memory.json")
        if not os.path.isfile(path):
            raise ValueError("DKD-M step %d needs step %d's memory %s: train step %d with --memory-size too"
                             % (step, step - 1, path, step - 1))
        with open(path) as handle:
            saved = json.load(handle)
        previous = saved["step_%d" % (step - 1)]["memory_candidates"]
    root = args.data or get_dataset_info(args.dataset).default_root
    prev = build_incremental_dataset(args.dataset, root, args.incremental, step - 1, args.train_split, "val",
                                     crop_size=tuple(args.crop_size), list_file=args.train_list,
                                     pipeline=args.pipeline, img_scale=args.img_scale,
                                     cache_dir=split_cache_dir(args.save_dir))
    candidates = list(previous)
    for index, sample in enumerate(prev.samples):
        image, label, _ = prev[index]
        logits = None
        if step >= 2 and teacher is not None:
            with torch.no_grad():
                logits = teacher(image.unsqueeze(0).to(device)).logits.float().cpu()
        raw = torch.where(label < 0, torch.full_like(label, 255), label)   # void is 255 in DKD's label sets
        candidates.append([sample.image, candidate_labels(raw.unsqueeze(0), logits)[0]])
    rng = np.random.default_rng(int(args.seed) + step)
    memory, names = sample_memory(candidates, old, int(args.memory_size), rng.permutation(len(candidates)).tolist(),
                                  rng.permutation(np.array(old)).tolist())
    if write:
        saved["step_%d" % step] = {"memory_candidates": memory, "memory_list": names}
        os.makedirs(args.save_dir, exist_ok=True)
        with open(os.path.join(args.save_dir, "memory.json"), "w") as handle:
            json.dump(saved, handle, indent=1)
    return names
