"""Walk a prepared dataset and report what the loaders would trip over.

    python tools/check_dataset.py citys data/cityscapes [--split train|val|all] [--list-file F]

Reports per split: number of samples, missing images or labels (unpaired files), unreadable
files, image/label size mismatches, label values outside the dataset's raw id set, and the
train-id classes that occur. Exits 1 when anything is wrong (0 otherwise), so it can gate a
training script.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import List, Optional

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import DatasetError, get_format  # noqa: E402
from datasets.base import map_label, read_image, read_label  # noqa: E402


def check_split(dataset: str, root: str, split: str, list_file: Optional[str], max_report: int,
                limit: Optional[int]) -> int:
    """Print the report of one split; return the number of problems."""
    fmt = get_format(dataset)
    try:
        samples = fmt.list_samples(root, split, list_file)
    except DatasetError as err:
        print("[%s] ERROR %s" % (split, err))
        return 1
    if limit is not None:
        samples = samples[:limit]
    problems: Counter = Counter()
    shown = 0
    seen = np.zeros(fmt.info.num_classes, np.int64)
    for number, sample in enumerate(samples, 1):
        kind = None
        try:
            if not os.path.isfile(sample.image) or not os.path.isfile(sample.label):
                kind = "missing image" if not os.path.isfile(sample.image) else "missing label"
                raise DatasetError("%s: %s" % (kind, sample.image if kind == "missing image" else sample.label))
            kind = "wrong label file"
            fmt.check_label_path(sample.label)
            kind = "unreadable"
            image = read_image(sample.image)
            raw = read_label(sample.label)
            kind = "size mismatch"
            if raw.shape != image.shape[:2]:
                raise DatasetError("size mismatch: image %s is %dx%d, label %s is %dx%d" % (
                    sample.image, image.shape[0], image.shape[1], sample.label, raw.shape[0], raw.shape[1]))
            kind = "label values"
            label = map_label(raw, fmt.label_lut, sample.label, fmt.info.name)
            seen += np.bincount(label[label >= 0].ravel(), minlength=fmt.info.num_classes)
        except DatasetError as err:
            problems[kind] += 1
            if shown < max_report:
                print("[%s] %s" % (split, err))
                shown += 1
        if number % 1000 == 0:
            print("[%s] checked %d / %d" % (split, number, len(samples)), flush=True)
    present = int((seen > 0).sum())
    print("[%s] %d samples, %d ok, %s; %d of %d classes occur" % (
        split, len(samples), len(samples) - sum(problems.values()),
        ", ".join("%s: %d" % item for item in sorted(problems.items())) or "no problems",
        present, fmt.info.num_classes))
    if 0 < present < fmt.info.num_classes:
        missing = [fmt.info.class_names[k] for k in np.flatnonzero(seen == 0)[:10]]
        print("[%s] classes never seen: %s%s" % (split, ", ".join(missing), " ..." if (seen == 0).sum() > 10 else ""))
    if not samples:
        print("[%s] ERROR no samples" % split)
        return 1
    return sum(problems.values())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Check a prepared segmentation dataset.")
    parser.add_argument("dataset", help="citys, voc, ade20k, camvid, coco_stuff_164k, pascal_context (or alias)")
    parser.add_argument("root", help="dataset root (see data/README.md)")
    parser.add_argument("--split", choices=["train", "val", "all"], default="all")
    parser.add_argument("--list-file", default=None, help="explicit list file (one split only)")
    parser.add_argument("--max-report", type=int, default=20, help="problems printed per split")
    parser.add_argument("--limit", type=int, default=None, help="check only the first N samples per split")
    args = parser.parse_args(argv)
    try:
        fmt = get_format(args.dataset)
    except ValueError as err:
        parser.error(str(err))
    if not os.path.isdir(args.root):
        print("ERROR dataset root %s does not exist (layouts: data/README.md)" % args.root)
        return 1
    if args.list_file is not None and args.split == "all":
        parser.error("--list-file needs --split train or --split val")
    splits = ["train", "val"] if args.split == "all" else [args.split]
    print("checking %s (%d classes) at %s" % (fmt.info.name, fmt.info.num_classes, args.root))
    problems = sum(check_split(fmt.info.name, args.root, split, args.list_file, args.max_report, args.limit)
                   for split in splits)
    print("FAILED: %d problem(s)" % problems if problems else "OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
