"""Pascal VOC 2012 with the SBD augmentation ("VOC aug"): 21 classes (0 = background).

Layout: ``JPEGImages/<id>.jpg``, ``SegmentationClassAug/<id>.png`` (grayscale ids, 10582 train_aug
images), optionally the official ``SegmentationClass/<id>.png`` (palette PNGs; read as palette
indices). Lists (CIRKD ``dataset/list/voc/{train_aug,val}.txt``: one id per line) are looked up
under the root as ``ImageSets/Segmentation/train_aug.txt`` (or mmseg's ``aug.txt``) and
``ImageSets/Segmentation/val.txt``, or ``train_aug.txt`` / ``val.txt`` next to the folders.
Val labels come from ``SegmentationClass`` when that file exists (as CIRKD), else from
``SegmentationClassAug``. Labels: 0..20 kept, 255 (object borders, "difficult") -> ignore.
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .base import (DatasetError, DatasetFormat, DatasetInfo, Sample, bit_palette, make_lut, read_list_file,
                   resolve_list, samples_from_list)

CLASS_NAMES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]

INFO = DatasetInfo(name="voc", num_classes=21, class_names=CLASS_NAMES, palette=bit_palette(21),
                   default_crop=(512, 512), default_root="data/VOCdevkit/VOC2012", aliases=("pascal_voc",))

LISTS = {"train": ["ImageSets/Segmentation/train_aug.txt", "ImageSets/Segmentation/aug.txt", "train_aug.txt"],
         "val": ["ImageSets/Segmentation/val.txt", "val.txt"]}


class PascalVOC(DatasetFormat):
    info = INFO
    label_lut = make_lut({value: value for value in range(21)}, ignore_values=[255])

    def list_samples(self, root: str, split: str, list_file: Optional[str]) -> List[Sample]:
        path = resolve_list(root, list_file, LISTS[split])
        if path is None:
            raise DatasetError("no %s list for Pascal VOC under %s (looked for %s): add the list file "
                               "(data/README.md) or pass list_file" % (split, root, ", ".join(LISTS[split])))

        def from_id(image_id: str) -> Tuple[str, str]:
            label = os.path.join("SegmentationClassAug", image_id + ".png")
            if split == "val":
                official = os.path.join("SegmentationClass", image_id + ".png")
                if os.path.isfile(os.path.join(root, official)):
                    label = official
            return os.path.join("JPEGImages", image_id + ".jpg"), label

        return samples_from_list(root, read_list_file(path), path, from_id)
