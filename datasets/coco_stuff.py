"""COCO-Stuff-164K: 171 classes (80 things + 91 stuff) from the 182-id label PNGs.

Layout (``stuffthingmaps_trainval2017.zip`` + COCO 2017 images, root ``coco_stuff_164k``):
``images/{train,val}2017/<id>.jpg`` and ``annotations/{train,val}2017/<id>.png``. Label PNG values
are COCO category id - 1 (0..181; 0 = person, 91..181 = the stuff classes 92..182) and 255 =
unlabelled. Lists (CIRKD ``dataset/list/coco_stuff_164k/coco_stuff_164k_{split}.txt``: one
12-digit id per line) are looked up under the root; without one the image folder is scanned.

Mapping implemented (the standard one, as mmseg's ``coco_stuff164k.py`` converter): the 11 PNG
values that no COCO category uses (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90: street sign, hat,
shoe, eye glasses, plate, mirror, window, desk, door, blender, hair brush) are dropped and the
remaining 171 values are renumbered 0..170 in order; 255 and the unused values -> ignore.
Difference from CIRKD: CIRKD trains on the raw values with 182 outputs (its README says 182
classes); 171-class results are what mmseg-style papers report.
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

INFO = DatasetInfo(name="coco_stuff_164k", num_classes=171, class_names=CLASS_NAMES,
                   palette=bit_palette(172)[1:], default_crop=(512, 512), default_root="data/coco_stuff_164k",
                   aliases=("coco_stuff",))


class CocoStuff164k(DatasetFormat):
    info = INFO
    label_lut = make_lut({raw: train_id for train_id, raw in enumerate(USED_RAW_IDS)},
                         ignore_values=UNUSED_RAW_IDS + [255])

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
