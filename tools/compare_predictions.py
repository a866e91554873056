"""One picture of several models' predictions: image | label | model 1 | model 2 | ... per row.

    python tools/compare_predictions.py --dataset citys --data DIR --out picture.png \
        teacher=work_dirs/a/eval baseline=work_dirs/b/eval distilled=work_dirs/c/eval [--rows 3]

Each NAME=DIR is an ``eval.py --save-pred`` folder (its ``pred/<image stem>.png`` palette PNGs hold
the predicted class ids). Rows are the first ``--rows`` validation images, whole, as eval.py saw them.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from datasets import build_dataset, get_dataset_info  # noqa: E402
from datasets.base import DatasetError  # noqa: E402
from utils.visualize import colorize, picture_of, strip  # noqa: E402


def titled(panel: np.ndarray, title: str) -> np.ndarray:
    """The panel with a 14-pixel caption band above it."""
    band = Image.new("RGB", (panel.shape[1], 14), "white")
    ImageDraw.Draw(band).text((2, 1), title, fill="black")
    return np.concatenate([np.asarray(band), panel], axis=0)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--data", required=True, help="dataset root")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--rows", type=int, default=3, help="validation images, one per row")
    p.add_argument("runs", nargs="+", metavar="NAME=EVAL_DIR")
    args = p.parse_args(argv)
    runs = []
    for item in args.runs:
        name, sep, folder = item.partition("=")
        if not sep or not os.path.isdir(os.path.join(folder, "pred")):
            print("error: %s: expected NAME=DIR with DIR/pred from eval.py --save-pred" % item, file=sys.stderr)
            return 1
        runs.append((name, os.path.join(folder, "pred")))
    info = get_dataset_info(args.dataset)
    try:
        dataset = build_dataset(info.name, args.data, split="val", mode="val")
    except (DatasetError, ValueError, FileNotFoundError) as exc:
        print("error: %s" % str(exc).splitlines()[0], file=sys.stderr)
        return 1
    rows = []
    for index in range(min(args.rows, len(dataset))):
        image, label, name = dataset[index]
        stem = os.path.splitext(os.path.basename(str(name)))[0]
        label = label.numpy()
        panels = [titled(picture_of(image.numpy(), label.shape), "image"),
                  titled(colorize(label, info.palette, -1), "label")]
        for run_name, folder in runs:
            path = os.path.join(folder, stem + ".png")
            if not os.path.isfile(path):
                print("error: %s has no prediction for %s (%s)" % (run_name, stem, path), file=sys.stderr)
                return 1
            panels.append(titled(colorize(np.asarray(Image.open(path)).astype(np.int64), info.palette, -1), run_name))
        rows.append(strip(panels))
    gap = np.full((4, rows[0].shape[1], 3), 255, dtype=np.uint8)
    picture = np.concatenate([part for row in rows for part in (row, gap)][:-1], axis=0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    Image.fromarray(picture).save(args.out)
    print("picture (image | label | %s): %s" % (" | ".join(n for n, _ in runs), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
