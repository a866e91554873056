"""Per-step image counts of a class-incremental task, by DKD's rule, from the dataset's own lists.

    python tools/incremental_splits.py --dataset voc --data data/VOCdevkit/VOC2012 --task 15-1 --setting overlap

Prints the train (and test) images of every step and, for DKD's tasks, the counts of the official
split files next to them (shared/notes/dkd.md); writes the selections to --cache (default
work_dirs/incremental_splits), where training runs find them. Exit code 1 when a count differs.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=["voc", "ade20k"])
    p.add_argument("--data", default=None)
    p.add_argument("--task", required=True)
    p.add_argument("--setting", choices=["overlap", "disjoint"], default="overlap")
    p.add_argument("--cache", default="work_dirs/incremental_splits")
    args = p.parse_args(argv)
    from datasets import build_dataset, get_dataset_info
    from datasets.incremental import DATASET_KEYS, select_samples, step_classes, task_steps
    from dkd_recipes import IMAGES
    key = DATASET_KEYS[args.dataset]
    root = args.data or get_dataset_info(args.dataset).default_root
    steps = task_steps(key, args.task)
    expected = IMAGES.get((key, args.setting, args.task))
    train = build_dataset(args.dataset, root, split="train", mode="val")
    test = build_dataset(args.dataset, root, split="val", mode="val")
    differs = False
    print("%s %s %s: %d steps" % (key, args.setting, args.task, len(steps)))
    for step in range(len(steps)):
        new, old = step_classes(key, args.task, step)
        cache = lambda rule: os.path.join(args.cache, "%s_%s_%s_%s_step%d.txt" % (key, args.setting, args.task, rule, step))  # noqa
        n_train = len(select_samples(train.samples, new, old, "train", args.setting, cache("train")))
        n_test = len(select_samples(test.samples, new, old, "test", args.setting, cache("test")))
        official = expected[step] if expected else None
        note = "" if official is None else ("  (official %d%s)" % (official, "" if official == n_train else ", DIFFERS"))
        differs |= official is not None and official != n_train
        print("step %d: classes %d-%d  train %d  test %d%s" % (step, new[0], new[-1], n_train, n_test, note))
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
