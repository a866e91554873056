"""COCO-Stuff-164K from the 182-id label PNGs: CIRKD's 182 outputs, or the 171-class mapping.

Layout (``stuffthingmaps_trainval2017.zip`` + COCO 2017 images, root ``coco_stuff_164k``):
``images/{train,val}2017/<id>.jpg`` and ``annotations/{train,val}2017/<id>.png``. Label PNG values
are COCO category id - 1 (0..181; 0 = person, 91..181 = the stuff classes 92..182) and 255 =
unlabelled. Lists (CIRKD ``dataset/list/coco_stuff_164k/coco_stuff_164k_{split}.txt``: one
12-digit id per line) are looked up under the root; without one the image folder is scanned.

Two conventions, two names:
- ``coco_stuff_164k`` (CIRKD, the default, so its released teachers load and score as there): the
  raw values 0..181 are the classes (182 outputs; the 11 ids no COCO category uses simply never
  occur), 255 -> ignore.
- ``coco_stuff_171`` (mmseg's ``coco_stuff164k.py`` converter, what mmseg-style papers report):
  the 11 unused values (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90: street sign, hat, shoe, eye
  glasses, plate, mirror, window, desk, door, blender, hair brush) are dropped and the remaining
  171 values renumbered 0..170 in order; 255 and the unused values -> ignore.
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .base import (DatasetFormat, DatasetInfo, Sample, bit_palette, make_lut, read_list_file, resolve_list,
                   samples_from_list, scan_pairs)

# Index = PNG value (COCO category id - 1); None = id not used by COCO.
RAW_NAMES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", None, "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", None, "backpack", "umbrella", None, None, "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", None, "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
    "chair", "couch", "potted plant", "bed", None, "dining table", None, None, "toilet", None, "tv", "laptop",
    "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", None,
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", None,
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard",
    "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain",
    "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile",
    "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel",
    "ground-other", "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain",
    "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other", "plastic", "platform",
    "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea",
    "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable", "wall-brick",
    "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other",
    "waterdrops", "window-blind", "window-other", "wood"]
USED_RAW_IDS = [raw for raw, name in enumerate(RAW_NAMES) if name is not None]
UNUSED_RAW_IDS = [raw for raw, name in enumerate(RAW_NAMES) if name is None]
CLASS_NAMES = [RAW_NAMES[raw] for raw in USED_RAW_IDS]

INFO = DatasetInfo(name="coco_stuff_164k", num_classes=182,
                   class_names=[name or "unused-%d" % raw for raw, name in enumerate(RAW_NAMES)],
                   palette=bit_palette(183)[1:], default_crop=(512, 512), default_root="data/coco_stuff_164k",
                   aliases=("coco_stuff",))
INFO_171 = DatasetInfo(name="coco_stuff_171", num_classes=171, class_names=CLASS_NAMES,
                       palette=bit_palette(172)[1:], default_crop=(512, 512), default_root="data/coco_stuff_164k",
                       aliases=("coco_stuff164k_171",))


class CocoStuff164k(DatasetFormat):
    """CIRKD convention: 182 classes = the raw PNG values."""
    info = INFO
    label_lut = make_lut({raw: raw for raw in range(len(RAW_NAMES))}, ignore_values=[255])

    def list_samples(self, root: str, split: str, list_file: Optional[str]) -> List[Sample]:
        folder = split + "2017"
        path = resolve_list(root, list_file, ["coco_stuff_164k_%s.txt" % split])
        if path is not None:
            def from_id(image_id: str) -> Tuple[str, str]:
                return (os.path.join("images", folder, image_id + ".jpg"),
                        os.path.join("annotations", folder, image_id + ".png"))
            return samples_from_list(root, read_list_file(path), path, from_id)
        return scan_pairs(os.path.join(root, "images", folder), os.path.join(root, "annotations", folder),
                          (".jpg",), lambda filename: os.path.splitext(filename)[0] + ".png")


class CocoStuff171(CocoStuff164k):
    """mmseg convention: 171 classes (unused ids dropped, the rest renumbered)."""
    info = INFO_171
    label_lut = make_lut({raw: train_id for train_id, raw in enumerate(USED_RAW_IDS)},
                         ignore_values=UNUSED_RAW_IDS + [255])
