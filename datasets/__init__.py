"""Datasets: six formats, one augmentation pipeline, an iteration sampler, synthetic data.

Names (``--dataset``): ``citys`` (alias ``cityscapes``), ``voc`` (``pascal_voc``), ``ade20k``,
``camvid``, ``coco_stuff_164k`` (``coco_stuff``; CIRKD's 182 classes), ``coco_stuff_171``
(mmseg's 171-class mapping), ``pascal_context`` (59 classes).

Ignore label: inside the framework every "do not train / do not score" pixel is **-1**
(``IGNORE_INDEX``): VOC/COCO 255, CamVid 11, ADE20K and Pascal Context 0, Cityscapes void ids
are all mapped to -1 when a label is read, and crop padding uses -1. Command lines may say 255;
``normalize_ignore_index`` turns it into -1.

    ds = build_dataset("citys", "data/cityscapes", split="train", mode="train", crop_size=(512, 1024))
    image, label, name = ds[(index, seed)]   # FloatTensor 3xHxW, LongTensor HxW, str
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

from .ade20k import ADE20K
from .base import (IGNORE_INDEX, DatasetError, DatasetFormat, DatasetInfo, Sample, SegmentationDataset,
                   data_error_line)
from .camvid import CamVid
from .cityscapes import Cityscapes
from .coco_stuff import CocoStuff164k, CocoStuff171
from .pascal_context import PascalContext59
from .pipelines import PIPELINE_NAMES, Pipeline, build_pipeline, pipeline_of
from .sampler import IterationSampler, collate
from .voc import PascalVOC

FORMATS: Dict[str, DatasetFormat] = {fmt.info.name: fmt for fmt in
                                     (Cityscapes(), PascalVOC(), ADE20K(), CamVid(), CocoStuff164k(),
                                      CocoStuff171(), PascalContext59())}
DATASET_NAMES = list(FORMATS)
_ALIASES = {alias: name for name, fmt in FORMATS.items() for alias in fmt.info.aliases}
DATASET_INFO: Dict[str, DatasetInfo] = {name: fmt.info for name, fmt in FORMATS.items()}
DATASET_INFO.update({alias: FORMATS[name].info for alias, name in _ALIASES.items()})


def canonical_name(name: str) -> str:
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise ValueError("unknown dataset %r; choose one of %s (aliases: %s)"
                         % (name, ", ".join(DATASET_NAMES), ", ".join(sorted(_ALIASES))))
    return key


def get_dataset_info(name: str) -> DatasetInfo:
    """``name, num_classes, class_names, palette (K x 3 uint8 RGB), default_crop (H, W)``, default_root."""
    return FORMATS[canonical_name(name)].info


def get_format(name: str) -> DatasetFormat:
    return FORMATS[canonical_name(name)]


def normalize_ignore_index(value: int) -> int:
    """CLI helper: 255 and -1 both mean "ignore"; the framework uses -1."""
    value = int(value)
    if value in (-1, 255):
        return IGNORE_INDEX
    raise ValueError("ignore index must be -1 or 255 (both mean 'ignore'; the framework uses -1), got %d"
                     % value)


def build_dataset(name: str, root: str, split: str = "train", mode: str = "train",
                  crop_size: Optional[Sequence[int]] = None, ignore_index: int = IGNORE_INDEX,
                  list_file: Optional[str] = None, on_bad_sample: str = "raise",
                  with_labels: bool = True, pipeline: str = "cirkd",
                  img_scale: Optional[Sequence[int]] = None) -> SegmentationDataset:
    """A torch Dataset of ``(image 3xHxW float, label HxW long with -1 ignore, name)``.

    mode 'train': random scale/pad/crop/flip (``dataset[(index, seed)]`` makes the draws
    deterministic); mode 'val': full image. ``crop_size`` defaults to the dataset's
    ``default_crop``. ``on_bad_sample='skip'`` replaces a broken training sample by the next index
    (validation: returns None, which ``collate`` drops) and counts it in ``dataset.skipped``;
    otherwise ``DatasetError`` is raised. ``pipeline`` names the augmentation (``cirkd`` or ``mmseg``,
    whose ``img_scale`` (W, H) defaults to the dataset's; ``datasets/pipelines.py``).
    """
    normalize_ignore_index(ignore_index)  # 255 or -1; labels always come out with -1
    fmt = get_format(name)
    return SegmentationDataset(fmt, root, split=split, mode=mode, crop_size=crop_size,
                               list_file=list_file, on_bad_sample=on_bad_sample, with_labels=with_labels,
                               pipeline=build_pipeline(pipeline, fmt.info, img_scale, crop_size))


__all__ = ["PIPELINE_NAMES", "Pipeline", "build_pipeline", "pipeline_of", "IGNORE_INDEX", "DATASET_INFO", "DATASET_NAMES", "DatasetError", "DatasetFormat", "DatasetInfo", "data_error_line",
           "Sample", "SegmentationDataset", "IterationSampler", "collate", "build_dataset", "canonical_name",
           "get_dataset_info", "get_format", "normalize_ignore_index"]
