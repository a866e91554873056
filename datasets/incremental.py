"""The class-incremental protocol of DKD (cvlab-yonsei/DKD@fb4693f ``data_loader/task.py``,
``dataset.py``, ``utils/memory.py``): tasks, per-step image selection and label masking, and the
DKD-M exemplar memory.

Ids stay global (VOC 0 = background, ADE 0 = "other" treated as background, 255 = void). A task
is a list of contiguous class ranges, one per step. At step t, with new = C_t, old = C_0..C_{t-1}:
- selection: train / val keep an image iff its raw label has a new class; ``disjoint`` train also
  requires every value in old | new | {0, 255}; test keeps an image iff it has an old or new class;
- masking: train / val keep new | {0, 255}, test keeps old | new | {0, 255}; every other value
  becomes ``masking_value`` (VOC 0 everywhere; ADE 0 for train, 255 for val / test).
- memory (DKD-M, before step t >= 1): candidates = (step t-1's memory, t >= 2) + step t-1's training
  images, each with its label set (unique masked label minus 0; from step 2 on, pixels labelled 0
  whose old model's max sigmoid >= 0.9 take that class first); shuffled (``cand_perm``), the old
  classes shuffled (``class_order``); round-robin over the classes, each taking the first remaining
  candidate that shows it, until ``mem_size`` images; stored grouped by class id.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

VOID = 255


def _ranges(first: Sequence[int], step: int, total: int) -> List[List[int]]:
    steps = [list(first)]
    start = first[-1] + 1
    while start <= total:
        steps.append(list(range(start, min(start + step, total + 1))))
        start += step
    return steps


TASKS: Dict[str, Dict[str, List[List[int]]]] = {
    "voc": {"19-1": _ranges(range(1, 20), 1, 20), "15-5": _ranges(range(1, 16), 5, 20),
            "15-1": _ranges(range(1, 16), 1, 20), "10-1": _ranges(range(1, 11), 1, 20),
            "5-3": _ranges(range(1, 6), 3, 20), "10-10": _ranges(range(1, 11), 10, 20)},
    "ade": {"100-50": _ranges(range(1, 101), 50, 150), "100-10": _ranges(range(1, 101), 10, 150),
            "50-50": _ranges(range(1, 51), 50, 150), "100-5": _ranges(range(1, 101), 5, 150)},
}
DATASET_KEYS = {"voc": "voc", "ade20k": "ade", "ade": "ade"}
SETTINGS = ("overlap", "disjoint")


class IncrementalTaskError(ValueError):
    """An unknown task, a step out of range or a class range beyond the dataset (one line, with the fix)."""


NUM_CLASSES = {"voc": 20, "ade": 150}      # class ids 1..N (0 = background)


def task_steps(dataset: str, task: str) -> List[List[int]]:
    """The class ranges of ``task``: DKD's named tasks, or any ``N-M`` (the first N classes, then M per
    step; DKD's names follow the same rule)."""
    key = DATASET_KEYS.get(dataset)
    if key is None:
        raise IncrementalTaskError("class-incremental tasks exist for voc and ade20k, not %r" % dataset)
    if task in TASKS[key]:
        return TASKS[key][task]
    parts = str(task).split("-")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise IncrementalTaskError("unknown %s task %r; use N-M (first N classes, then M per step), e.g. %s"
                                   % (key, task, ", ".join(TASKS[key])))
    first, per_step = int(parts[0]), int(parts[1])
    if first >= NUM_CLASSES[key]:
        raise IncrementalTaskError("%s task %s: the base step's %d classes leave none of the dataset's %d classes "
                                   "for later steps" % (key, task, first, NUM_CLASSES[key]))
    return _ranges(range(1, first + 1), per_step, NUM_CLASSES[key])


def parse_incremental(text: str) -> Tuple[str, str, str]:
    """``voc:15-1:overlap`` -> (dataset key, task, setting)."""
    parts = str(text).split(":")
    if len(parts) != 3 or parts[2] not in SETTINGS:
        raise IncrementalTaskError("--incremental must be DATASET:TASK:SETTING, e.g. voc:15-1:overlap "
                                   "(setting overlap or disjoint), got %r" % text)
    task_steps(parts[0], parts[1])
    return DATASET_KEYS[parts[0]], parts[1], parts[2]


def step_classes(dataset: str, task: str, step: int) -> Tuple[List[int], List[int]]:
    """(new classes of ``step``, old classes of the steps before)."""
    steps = task_steps(dataset, task)
    if not 0 <= step < len(steps):
        raise IncrementalTaskError("%s task %s has steps 0..%d, got step %d" % (dataset, task, len(steps) - 1, step))
    return list(steps[step]), [c for s in steps[:step] for c in s]


def head_widths(dataset: str, task: str, step: int) -> List[int]:
    return [len(s) for s in task_steps(dataset, task)[:step + 1]]


def incremental_classes(text: str, step: int, dataset_name: str) -> Tuple[int, List[int]]:
    """(logit channels = 1 + seen classes, head widths) of ``--incremental`` at ``step``, checked
    against the ``--dataset`` (the task's classes must exist in it)."""
    dataset, task, _ = parse_incremental(text)
    if DATASET_KEYS.get(dataset_name, dataset_name) != dataset:
        raise IncrementalTaskError("--incremental %s is a task of %s, but --dataset is %s" % (text, dataset, dataset_name))
    step_classes(dataset, task, step)
    widths = head_widths(dataset, task, step)
    return 1 + sum(widths), widths


def keep_image(values: Sequence[int], new: Sequence[int], old: Sequence[int], split: str,
               setting: str = "overlap") -> bool:
    values = set(int(v) for v in values)
    if split == "test":
        return bool(values & (set(new) | set(old)))
    if not values & set(new):
        return False
    if split == "train" and setting == "disjoint":
        return values <= set(new) | set(old) | {0, VOID}
    return True


def masking_value(dataset: str, split: str) -> int:
    return VOID if DATASET_KEYS.get(dataset, dataset) == "ade" and split in ("val", "test") else 0


def mask_label(label: np.ndarray, new: Sequence[int], old: Sequence[int], split: str, value: int) -> np.ndarray:
    keep = set(new) | {0, VOID} | (set(old) if split == "test" else set())
    out = np.array(label, copy=True)
    out[~np.isin(out, sorted(keep))] = value
    return out


def candidate_labels(labels: torch.Tensor, old_logits: Optional[torch.Tensor] = None,
                     threshold: float = 0.9) -> List[List[int]]:
    """Label set of each image (unique minus 0); with the old model's logits (ch 0 aux) background
    pixels whose best class sigmoid >= ``threshold`` take that class first."""
    if old_logits is not None:
        scores, classes = torch.sigmoid(old_logits)[:, 1:].max(dim=1)
        labels = torch.where((labels == 0) & (scores >= threshold), classes + 1, labels.long())
    out = []
    for label in labels:
        values = torch.unique(label).tolist()
        out.append([int(v) for v in values if v != 0])
    return out


def sample_memory(candidates: List[list], old_classes: Sequence[int], mem_size: int, cand_perm: Sequence[int],
                  class_order: Sequence[int]) -> Tuple[List[list], List[str]]:
    """(memory candidates grouped by class id, sorted names) of ``memory_sampling_balanced``."""
    pool = [candidates[int(i)] for i in cand_perm]
    per_class: Dict[int, List[list]] = {int(c): [] for c in sorted(old_classes)}
    taken = 0
    if not any(set(labels) & set(per_class) for _, labels in pool) and mem_size > 0:
        raise IncrementalTaskError("no memory candidate shows an old class: the exemplar memory cannot be filled")
    while taken < mem_size:
        progress = False
        for cls in class_order:
            for index, (name, labels) in enumerate(pool):
                if int(cls) in labels:
                    per_class[int(cls)].append([name, labels])
                    del pool[index]
                    taken += 1
                    progress = True
                    break
            if taken >= mem_size:
                break
        if not progress:     # the official loop would spin forever here
            break
    memory = [m for c in sorted(per_class) for m in per_class[c]]
    return memory, sorted(m[0] for m in memory)


def split_cache_dir(save_dir: str) -> str:
    """Where the runs of one task (``<out>/step_t``) share their per-step selections."""
    import os
    return os.path.join(os.path.dirname(os.path.abspath(save_dir)), "incremental_splits")


def framework_label(masked: np.ndarray) -> np.ndarray:
    """Masked raw ids -> the framework's labels: ids stay, void (255) -> -1."""
    out = masked.astype(np.int32)
    out[out == VOID] = -1
    return out


def _label_values(path: str) -> np.ndarray:
    from .base import read_label
    return np.unique(read_label(path))


def select_samples(samples, new: Sequence[int], old: Sequence[int], rule: str, setting: str,
                   cache: Optional[str] = None) -> list:
    """The samples a step keeps (cached as a list of image paths; a cache is trusted, as DKD's .npy)."""
    import os
    if cache and os.path.isfile(cache):
        with open(cache) as handle:
            wanted = {line.strip() for line in handle if line.strip()}
        return [s for s in samples if s.image in wanted]
    kept = [s for s in samples if keep_image(_label_values(s.label), new, old, rule, setting)]
    if cache:
        os.makedirs(os.path.dirname(cache) or ".", exist_ok=True)
        tmp = cache + ".tmp%d" % os.getpid()
        with open(tmp, "w") as handle:
            handle.writelines(s.image + "\n" for s in kept)
        os.replace(tmp, cache)
    return kept


def build_incremental_dataset(name: str, root: str, incremental: str, step: int, split: str, mode: str,
                              cache_dir: Optional[str] = None, memory: Sequence[str] = (), **kwargs):
    """The step's dataset: images selected by the protocol, labels masked; ``split`` train uses the
    train rule, val the test rule (every seen class scored); ``memory`` adds exemplar image paths."""
    from . import build_dataset
    dataset, task, setting = parse_incremental(incremental)
    new, old = step_classes(dataset, task, step)
    rule = "train" if split == "train" else "test"
    ds = build_dataset(name, root, split=split, mode=mode, **kwargs)
    cache = None
    if cache_dir:
        import os
        cache = os.path.join(cache_dir, "%s_%s_%s_%s_step%d.txt" % (dataset, setting, task, rule, step))
    kept = select_samples(ds.samples, new, old, rule, setting, cache)
    if not kept:
        raise IncrementalTaskError("no %s image of %s shows a class of step %d of %s (classes %s): check the data "
                                   "and the task" % (split, root, step, task, new))
    extra = [s for s in ds.samples if s.image in set(memory)]
    ds.samples = kept + extra
    value = masking_value(dataset, rule if rule == "train" else "test")
    ds.label_fn = lambda raw: framework_label(mask_label(raw, new, old, rule, value))
    return ds
