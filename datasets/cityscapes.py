"""Cityscapes (fine annotations): 19 train classes from the official 34 label ids.

Layout (official): ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` and
``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png``. List file (CIRKD ``dataset/list/cityscapes/
{train,val}.lst``): ``image<TAB>label`` per line, paths relative to the root; looked up as
``<root>/{split}.lst`` when not given, else the folders are scanned. The CPS / MGD partition lists
(``data/splits/cityscapes``: ``/images/train/<stem>.png  /segmentation/train/<stem>_gtFine.png``) are
read as they are and mapped to the official layout above.
Labels: raw *labelIds* (0..33) -> train ids with the official table (CIRKD ``id_to_trainid``);
every void id (0-6, 9, 10, 14-16, 18, 29, 30) -> ignore. 255 (license plate written as -1 by
some tools) -> ignore. ``*_labelTrainIds.png`` files are refused: they hold a different encoding.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional

import numpy as np

from .base import (DatasetError, DatasetFormat, DatasetInfo, Sample, make_lut, read_list_file,
                   require_dir, resolve_list, samples_from_list, stem)

CLASS_NAMES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
               "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
               "motorcycle", "bicycle"]
PALETTE = np.array([[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
                    [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
                    [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
                    [0, 80, 100], [0, 0, 230], [119, 11, 32]], np.uint8)
# Official label id of each train id (cityscapesScripts labels.py).
TRAIN_ID_TO_LABEL_ID = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
VOID_LABEL_IDS = [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30]

INFO = DatasetInfo(name="citys", num_classes=19, class_names=CLASS_NAMES, palette=PALETTE,
                   default_crop=(512, 1024), mmseg_img_scale=(2048, 1024), default_root="data/cityscapes", aliases=("cityscapes",),
                   train_id_to_label_id=tuple(TRAIN_ID_TO_LABEL_ID))


CPS_LINE = re.compile(r"^/?images/(train|val|test)/(([a-z_]+)_\d+_\d+)\.png$")


def official_layout(row: List[str]) -> List[str]:
    """A CPS / MGD partition line (``/images/train/<stem>.png  /segmentation/train/<stem>_gtFine.png``)
    -> the official layout's image and labelIds paths; any other row is returned unchanged."""
    match = CPS_LINE.match(row[0]) if row else None
    if not match:
        return row
    split, stem_, city = match.groups()
    return ["leftImg8bit/%s/%s/%s_leftImg8bit.png" % (split, city, stem_),
            "gtFine/%s/%s/%s_gtFine_labelIds.png" % (split, city, stem_)]


class Cityscapes(DatasetFormat):
    info = INFO
    label_lut = make_lut({label_id: train_id for train_id, label_id in enumerate(TRAIN_ID_TO_LABEL_ID)},
                         ignore_values=VOID_LABEL_IDS + [255])

    def list_samples(self, root: str, split: str, list_file: Optional[str]) -> List[Sample]:
        path = resolve_list(root, list_file, ["%s.lst" % split])
        if path is not None:
            rows = [official_layout(row) for row in read_list_file(path)]
            return samples_from_list(root, rows, path, from_id=None)
        image_root = os.path.join(root, "leftImg8bit", split)
        require_dir(image_root, "Cityscapes image folder")
        samples = []
        for city in sorted(os.listdir(image_root)):
            city_dir = os.path.join(image_root, city)
            if not os.path.isdir(city_dir):
                continue
            for filename in sorted(os.listdir(city_dir)):
                if filename.endswith("_leftImg8bit.png"):
                    base = filename[:-len("_leftImg8bit.png")]
                    label = os.path.join(root, "gtFine", split, city, base + "_gtFine_labelIds.png")
                    samples.append(Sample(os.path.join(city_dir, filename), label, stem(filename)))
        return samples

    def check_label_path(self, path: str) -> None:
        if path.endswith("_labelTrainIds.png"):
            raise DatasetError("label %s is a trainIds file; this loader maps the official "
                               "*_gtFine_labelIds.png itself: point the list file at labelIds" % path)
