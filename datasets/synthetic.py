"""Synthetic street-scene datasets written in the exact on-disk format of each real dataset.

    python -m datasets.synthetic --format cityscapes --out data/synthetic_citys \
        --num-train 200 --num-val 50 --size 512 1024 --seed 0 --workers 2

Every scene is rendered once with real Cityscapes label ids (``synthetic_street.py``) and then
written in the requested layout, with the street classes mapped to plausible ids of that
dataset (``CLASS_MAP``; classes the dataset lacks become its background / "other" value):

- cityscapes: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png``,
  ``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png`` (void ids 1, 2, 4, 9, 10 occur) and the
  CIRKD lists ``train.lst`` / ``val.lst`` (``image<TAB>label``).
- voc: ``JPEGImages/*.jpg``, ``SegmentationClassAug/*.png`` with a 255 band around objects,
  val labels also as palette PNGs in ``SegmentationClass/``, ``ImageSets/Segmentation/{train_aug,val}.txt``.
- camvid: ``{train,val}/*.png``, ``{train,val}annot/*.png`` (11 = void), ``camvid_{split}_list.txt``.
- ade20k: ``images/{training,validation}/ADE_*.jpg``, ``annotations/.../ADE_*.png`` (0 = other).
- coco_stuff: ``images/{train,val}2017/*.jpg``, ``annotations/{train,val}2017/*.png`` (182-id
  values, 255 = unlabelled), ``coco_stuff_164k_{split}.txt``.
- pascal_context: ``JPEGImages/*.jpg``, ``SegmentationClassContext/*.png`` (0 = background),
  ``ImageSets/SegmentationContext/{train,val}.txt``.

Each image depends only on (seed, split, index), so the output is identical for any number of
worker processes. Point ``build_dataset(<dataset>, DIR)`` at the output folder.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from . import ade20k, camvid, coco_stuff, pascal_context, voc
from .base import bit_palette
from .synthetic_scene import (BICYCLE, BUILDING, BUS, CAR, FENCE, LIGHT, MOTORCYCLE, PERSON, POLE, RIDER, ROAD,
                              SIDEWALK, SIGN, SKY, TERRAIN, TRAIN, TRUCK, VEGETATION, WALL)
from .synthetic_street import render_street

FORMAT_NAMES = ("cityscapes", "voc", "ade20k", "camvid", "coco_stuff", "pascal_context")
DATASET_OF_FORMAT = {"cityscapes": "citys", "voc": "voc", "ade20k": "ade20k", "camvid": "camvid",
                     "coco_stuff": "coco_stuff_164k", "pascal_context": "pascal_context"}
_FORMAT_ALIASES = {"citys": "cityscapes", "coco_stuff_164k": "coco_stuff", "pascal_voc": "voc"}

STREET = {ROAD: "road", SIDEWALK: "sidewalk", BUILDING: "building", WALL: "wall", FENCE: "fence", POLE: "pole",
          LIGHT: "traffic light", SIGN: "traffic sign", VEGETATION: "vegetation", TERRAIN: "terrain", SKY: "sky",
          PERSON: "person", RIDER: "rider", CAR: "car", TRUCK: "truck", BUS: "bus", TRAIN: "train",
          MOTORCYCLE: "motorcycle", BICYCLE: "bicycle"}
# street class -> class name in the target dataset (missing: background / other).
CLASS_MAP = {
    "voc": {"person": "person", "rider": "person", "car": "car", "truck": "car", "bus": "bus", "train": "train",
            "motorcycle": "motorbike", "bicycle": "bicycle"},
    "camvid": {"sky": "sky", "building": "building", "wall": "building", "pole": "pole", "road": "road",
               "sidewalk": "sidewalk", "vegetation": "tree", "terrain": "tree", "traffic sign": "sign symbol",
               "traffic light": "sign symbol", "fence": "fence", "car": "car", "truck": "car", "bus": "car",
               "train": "car", "person": "pedestrian", "rider": "bicyclist", "bicycle": "bicyclist",
               "motorcycle": "bicyclist"},
    "ade20k": {"road": "road", "sidewalk": "sidewalk", "building": "building", "wall": "wall", "fence": "fence",
               "pole": "pole", "traffic light": "traffic light", "traffic sign": "signboard",
               "vegetation": "tree", "terrain": "grass", "sky": "sky", "person": "person", "rider": "person",
               "car": "car", "truck": "truck", "bus": "bus", "train": "bus", "motorcycle": "minibike",
               "bicycle": "bicycle"},
    "coco_stuff": {"road": "road", "sidewalk": "pavement", "building": "building-other", "wall": "wall-concrete",
                   "fence": "fence", "pole": "metal", "traffic light": "traffic light", "traffic sign": "stop sign",
                   "vegetation": "tree", "terrain": "grass", "sky": "sky-other", "person": "person",
                   "rider": "person", "car": "car", "truck": "truck", "bus": "bus", "train": "train",
                   "motorcycle": "motorcycle", "bicycle": "bicycle"},
    "pascal_context": {"road": "road", "sidewalk": "sidewalk", "building": "building", "wall": "wall",
                       "fence": "fence", "traffic light": "light", "traffic sign": "sign", "vegetation": "tree",
                       "terrain": "grass", "sky": "sky", "person": "person", "rider": "person", "car": "car",
                       "truck": "truck", "bus": "bus", "train": "train", "motorcycle": "motorbike",
                       "bicycle": "bicycle"},
}


def _raw_value(fmt: str, name: str) -> int:
    if fmt == "voc":
        return voc.CLASS_NAMES.index(name)
    if fmt == "camvid":
        return camvid.CLASS_NAMES.index(name)
    if fmt == "ade20k":
        return ade20k.CLASS_NAMES.index(name) + 1
    if fmt == "coco_stuff":
        return coco_stuff.RAW_NAMES.index(name)
    return pascal_context.CLASS_NAMES.index(name) + 1


def label_table(fmt: str) -> np.ndarray:
    """256-entry uint8 table: Cityscapes label id -> raw label value written for ``fmt``."""
    if fmt == "cityscapes":
        return np.arange(256, dtype=np.uint8)
    void, background = {"voc": (255, 0), "camvid": (11, 11), "ade20k": (0, 0), "coco_stuff": (255, 255),
                        "pascal_context": (0, 0)}[fmt]
    table = np.full(256, void, np.uint8)
    for label_id, street_name in STREET.items():
        target = CLASS_MAP[fmt].get(street_name)
        table[label_id] = _raw_value(fmt, target) if target is not None else background
    return table


def void_band(label: np.ndarray, width: int) -> np.ndarray:
    """VOC style: 255 on boundaries touching an object (values other than 0 and 255)."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    edge = cv2.dilate(label, kernel) != cv2.erode(label, kernel)
    objects = ((label != 0) & (label != 255)).astype(np.uint8)
    near = cv2.dilate(objects, kernel) > 0
    out = label.copy()
    out[edge & near] = 255
    return out


def _paths(fmt: str, split: str, index: int) -> Tuple[str, str, str]:
    """(image path, label path, list line) relative to the output root."""
    if fmt == "cityscapes":
        city = (["aachen", "bochum", "bremen"] if split == "train" else ["frankfurt", "lindau", "munster"])[index % 3]
        base = "%s_%06d_000019" % (city, index)
        image = "leftImg8bit/%s/%s/%s_leftImg8bit.png" % (split, city, base)
        label = "gtFine/%s/%s/%s_gtFine_labelIds.png" % (split, city, base)
        return image, label, image + "\t" + label
    if fmt in ("voc", "pascal_context"):
        image_id = "%s_%06d" % ("2007" if split == "train" else "2008", index)
        folder = "SegmentationClassAug" if fmt == "voc" else "SegmentationClassContext"
        return "JPEGImages/%s.jpg" % image_id, "%s/%s.png" % (folder, image_id), image_id
    if fmt == "camvid":
        name = "%s_%06d" % ("0001TP" if split == "train" else "Seq05VD", index)
        image, label = "%s/%s.png" % (split, name), "%sannot/%s.png" % (split, name)
        return image, label, image + " " + label
    if fmt == "ade20k":
        folder, prefix = ("training", "train") if split == "train" else ("validation", "val")
        name = "ADE_%s_%08d" % (prefix, index + 1)
        return "images/%s/%s.jpg" % (folder, name), "annotations/%s/%s.png" % (folder, name), name
    image_id = "%012d" % (index + 1 if split == "train" else 500000 + index + 1)
    return ("images/%s2017/%s.jpg" % (split, image_id), "annotations/%s2017/%s.png" % (split, image_id), image_id)


def _list_path(fmt: str, split: str) -> Optional[str]:
    """Where the format's loader looks for its list (ADE20K: none, the folders are scanned)."""
    return {"cityscapes": "%s.lst" % split,
            "voc": "ImageSets/Segmentation/%s.txt" % ("train_aug" if split == "train" else "val"),
            "camvid": "camvid_%s_list.txt" % split, "ade20k": None,
            "coco_stuff": "coco_stuff_164k_%s.txt" % split,
            "pascal_context": "ImageSets/SegmentationContext/%s.txt" % split}[fmt]


# Noisy photos barely compress: Huffman-only coding is faster and smaller than zlib level 1 here.
PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]


def _write_one(task: Tuple[str, str, str, int, int, int, int]) -> str:
    fmt, out, split, index, seed, height, width = task
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
    image, label_ids = render_street(rng, height, width)
    label = label_table(fmt)[label_ids]
    if fmt == "voc":
        label = void_band(label, max(1, int(round(width / 256.0))))
    image_rel, label_rel, line = _paths(fmt, split, index)
    for rel in (image_rel, label_rel):
        os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
    if image_rel.endswith(".jpg"):
        cv2.imwrite(os.path.join(out, image_rel), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    else:
        cv2.imwrite(os.path.join(out, image_rel), image, PNG_FAST)
    cv2.imwrite(os.path.join(out, label_rel), label, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if fmt == "voc" and split == "val":                                # official palette PNGs as well
        palette_path = os.path.join(out, "SegmentationClass", os.path.basename(label_rel))
        os.makedirs(os.path.dirname(palette_path), exist_ok=True)
        indexed = Image.fromarray(label, mode="P")
        indexed.putpalette(bit_palette(256).reshape(-1).tolist())
        indexed.save(palette_path, compress_level=1)
    return line


def _worker_init() -> None:
    cv2.setNumThreads(1)


def write_semi_split(out: str, lines: Sequence[str], ratio: int, seed: int = 0) -> Tuple[str, str]:
    """A labeled / unlabeled partition of the training lines (1/ratio labeled, chosen with ``seed``), as
    ``splits/train_{labeled,unlabeled}_1-<ratio>.txt`` in the format's own list syntax."""
    if ratio < 2 or len(lines) < 2:
        raise ValueError("a semi-supervised split needs ratio >= 2 and >= 2 training images (got 1/%d of %d)"
                         % (ratio, len(lines)))
    order = np.random.default_rng([seed, 7]).permutation(len(lines))
    count = max(1, len(lines) // ratio)
    labeled = sorted(int(i) for i in order[:count])
    paths = []
    for kind, rows in (("labeled", labeled), ("unlabeled", sorted(int(i) for i in order[count:]))):
        path = os.path.join(out, "splits", "train_%s_1-%d.txt" % (kind, ratio))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.writelines(lines[i] + "\n" for i in rows)
        paths.append(path)
    return paths[0], paths[1]


def generate(format: str, out: str, num_train: int, num_val: int, size: Sequence[int] = (512, 1024),
             seed: int = 0, workers: int = 1, semi_split: Optional[int] = None) -> Dict[str, object]:
    """Write ``num_train`` + ``num_val`` scenes in ``format`` under ``out``; returns a summary dict.
    ``semi_split=R`` also writes a 1/R labeled partition (``labeled_list`` / ``unlabeled_list``)."""
    fmt = _FORMAT_ALIASES.get(format, format)
    if fmt not in FORMAT_NAMES:
        raise ValueError("unknown synthetic format %r; choose one of %s" % (format, ", ".join(FORMAT_NAMES)))
    height, width = int(size[0]), int(size[1])
    if height < 16 or width < 16:
        raise ValueError("size must be at least 16x16, got %dx%d" % (height, width))
    start = time.time()
    tasks = [(fmt, out, split, index, int(seed), height, width)
             for split, count in (("train", num_train), ("val", num_val)) for index in range(int(count))]
    os.makedirs(out, exist_ok=True)
    if workers > 1 and len(tasks) > 1:
        context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
            lines = list(pool.map(_write_one, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
    else:
        lines = [_write_one(task) for task in tasks]
    for split, count, offset in (("train", num_train, 0), ("val", num_val, num_train)):
        list_rel = _list_path(fmt, split)
        if list_rel is not None:
            path = os.path.join(out, list_rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                handle.writelines(line + "\n" for line in lines[offset:offset + int(count)])
    seconds = time.time() - start
    summary: Dict[str, object] = {"format": fmt, "dataset": DATASET_OF_FORMAT[fmt], "root": out,
                                  "num_train": int(num_train), "num_val": int(num_val), "size": (height, width),
                                  "seconds": seconds, "images_per_second": len(tasks) / max(seconds, 1e-9)}
    if semi_split:
        summary["labeled_list"], summary["unlabeled_list"] = write_semi_split(out, lines[:int(num_train)],
                                                                              int(semi_split), int(seed))
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic street-scene dataset in a real format.")
    parser.add_argument("--format", required=True, choices=list(FORMAT_NAMES) + sorted(_FORMAT_ALIASES))
    parser.add_argument("--out", required=True, help="output root (pass it as the dataset root later)")
    parser.add_argument("--num-train", type=int, default=200)
    parser.add_argument("--num-val", type=int, default=50)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--semi-split", type=int, default=None, metavar="R",
                        help="also write splits/train_{labeled,unlabeled}_1-R.txt (1/R of the training images labeled)")
    args = parser.parse_args(argv)
    summary = generate(args.format, args.out, args.num_train, args.num_val, args.size, args.seed, args.workers,
                       args.semi_split)
    print("wrote %d train + %d val %s images (%dx%d) to %s in %.1f s (%.1f images/s); use --dataset %s" % (
        summary["num_train"], summary["num_val"], summary["format"], summary["size"][0], summary["size"][1],
        summary["root"], summary["seconds"], summary["images_per_second"], summary["dataset"]))
    if args.semi_split:
        print("semi-supervised split: --train-list %s --unlabeled-list %s" % (summary["labeled_list"],
                                                                            summary["unlabeled_list"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
