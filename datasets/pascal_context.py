"""Pascal Context, 59-class setting (PASCAL VOC 2010 images).

Layout (mmseg's converter ``tools/dataset_converters/pascal_context.py`` output, root
``VOCdevkit/VOC2010``): ``JPEGImages/<id>.jpg``, ``SegmentationClassContext/<id>.png`` with
0 = background / unlabelled and 1..59 the 59 classes, lists
``ImageSets/SegmentationContext/{train,val}.txt`` (one id per line; 4996 / 5104 images).
Labels ("reduce zero label"): 0 -> ignore, v -> v - 1 for v in 1..59; 255 -> ignore.
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .base import (DatasetError, DatasetFormat, DatasetInfo, Sample, bit_palette, make_lut, read_list_file,
                   resolve_list, samples_from_list)

CLASS_NAMES = ["aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
               "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow",
               "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground",
               "horse", "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate", "platform",
               "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa",
               "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood"]

INFO = DatasetInfo(name="pascal_context", num_classes=59, class_names=CLASS_NAMES,
                   palette=bit_palette(60)[1:], default_crop=(480, 480), mmseg_img_scale=(520, 520),
                   default_root="data/VOCdevkit/VOC2010", aliases=("pascal_context_59", "context"))


class PascalContext59(DatasetFormat):
    info = INFO
    label_lut = make_lut({value: value - 1 for value in range(1, 60)}, ignore_values=[0, 255])

    def list_samples(self, root: str, split: str, list_file: Optional[str]) -> List[Sample]:
        candidates = ["ImageSets/SegmentationContext/%s.txt" % split]
        path = resolve_list(root, list_file, candidates)
        if path is None:
            raise DatasetError("no %s list for Pascal Context under %s (looked for %s): run the "
                               "conversion in data/README.md or pass list_file" % (split, root, candidates[0]))

        def from_id(image_id: str) -> Tuple[str, str]:
            return (os.path.join("JPEGImages", image_id + ".jpg"),
                    os.path.join("SegmentationClassContext", image_id + ".png"))

        return samples_from_list(root, read_list_file(path), path, from_id)
