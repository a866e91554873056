"""ADE20K (SceneParsing / ADEChallengeData2016): 150 classes.

Layout (official zip): ``images/{training,validation}/ADE_*.jpg`` and
``annotations/{training,validation}/ADE_*.png``; CIRKD scans the folders (20210 / 2000 images),
so does this loader (sorted); a list file of ids or ``image label`` pairs may replace the scan.
Labels ("reduce zero label", CIRKD ``label - 1``): 0 ("other") -> ignore, v -> v - 1 for 1..150.
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .base import (DatasetFormat, DatasetInfo, Sample, bit_palette, make_lut, read_list_file, resolve_list,
                   samples_from_list, scan_pairs)

CLASS_NAMES = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag"]

INFO = DatasetInfo(name="ade20k", num_classes=150, class_names=CLASS_NAMES, palette=bit_palette(151)[1:],
                   default_crop=(512, 512), default_root="data/ADEChallengeData2016")

SPLIT_DIRS = {"train": "training", "val": "validation"}


class ADE20K(DatasetFormat):
    info = INFO
    label_lut = make_lut({value: value - 1 for value in range(1, 151)}, ignore_values=[0])

    def list_samples(self, root: str, split: str, list_file: Optional[str]) -> List[Sample]:
        folder = SPLIT_DIRS[split]
        path = resolve_list(root, list_file, [])
        if path is not None:
            def from_id(image_id: str) -> Tuple[str, str]:
                image_id = os.path.splitext(image_id)[0]
                return (os.path.join("images", folder, image_id + ".jpg"),
                        os.path.join("annotations", folder, image_id + ".png"))
            return samples_from_list(root, read_list_file(path), path, from_id)
        return scan_pairs(os.path.join(root, "images", folder), os.path.join(root, "annotations", folder),
                          (".jpg",), lambda filename: os.path.splitext(filename)[0] + ".png")
