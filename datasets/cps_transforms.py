"""The CPS / MGD (TorchSemiSeg) training pipeline, step for step (``TrainPre`` of the official
``dataloader.py`` and ``furnace/utils/img_utils.py``), on SegKD's arrays.

  1. horizontal flip when U[0, 1) >= 0.5;
  2. scale s from {0.5, 0.75, 1.0, 1.5, 1.75, 2.0}; size (int(h s), int(w s)); ``cv2.resize`` image
     bilinear (uint8), label nearest;
  3. RGB ``(x / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)`` in float32;
  4. crop position: top = randint(0, h - crop_h + 1) INCLUSIVE when h > crop_h, else 0 (left
     likewise; the official off-by-one can start a crop one row/column short, which step 5 pads);
  5. crop, then pad to the crop size CENTRED (top pad//2, bottom the rest): image 0 (the mean
     colour), label ignore.
The unlabeled streams use the same transform (their labels are all ignore). Validation: the full
image, normalised the same way (the sliding-window protocol pads it centred, ``utils/inference.py``).
Differences: draws come from a numpy ``Generator`` (the official code uses Python's ``random``
inside loader workers); normalisation is computed as ``(x - 255 mean) / (255 std)``, within one
float32 ulp of the official ``(x/255 - mean)/std``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import cv2
import numpy as np

from .transforms import IGNORE_INDEX, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, normalize_rgb, to_chw

CPS_SCALES = (0.5, 0.75, 1.0, 1.5, 1.75, 2.0)
# 255 x (0.485, 0.456, 0.406) and 255 x (0.229, 0.224, 0.225): the ImageNet values of transforms.py
CPS_MEAN_RGB, CPS_STD_RGB = IMAGENET_MEAN_RGB, IMAGENET_STD_RGB


def centred_pad(array: np.ndarray, size_hw: Sequence[int], value: float) -> np.ndarray:
    pad_h = max(int(size_hw[0]) - array.shape[0], 0)
    pad_w = max(int(size_hw[1]) - array.shape[1], 0)
    if not (pad_h or pad_w):
        return array
    widths = [(pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value)


def apply_cps_draws(image: np.ndarray, label: np.ndarray, crop_size: Sequence[int], flip: bool, scale: float,
                    crop_yx: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """The pipeline with explicit draws (``crop_yx`` indexes the scaled image)."""
    if flip:
        image, label = image[:, ::-1], label[:, ::-1]
    height, width = int(image.shape[0] * scale), int(image.shape[1] * scale)
    image = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(np.ascontiguousarray(label, dtype=np.int32), (width, height), interpolation=cv2.INTER_NEAREST)
    image = normalize_rgb(image)
    top, left = int(crop_yx[0]), int(crop_yx[1])
    image = image[top:top + int(crop_size[0]), left:left + int(crop_size[1])]
    label = label[top:top + int(crop_size[0]), left:left + int(crop_size[1])]
    image = centred_pad(image, crop_size, 0.0)
    label = centred_pad(label, crop_size, IGNORE_INDEX)
    return to_chw(image), np.ascontiguousarray(label, dtype=np.int64)


def cps_train_transform(image: np.ndarray, label: np.ndarray, crop_size: Sequence[int],
                        rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Draw order: flip, scale, top, left."""
    flip = bool(rng.random() >= 0.5)
    scale = CPS_SCALES[int(rng.integers(0, len(CPS_SCALES)))]
    height, width = int(image.shape[0] * scale), int(image.shape[1] * scale)
    top = int(rng.integers(0, height - int(crop_size[0]) + 2)) if height > int(crop_size[0]) else 0
    left = int(rng.integers(0, width - int(crop_size[1]) + 2)) if width > int(crop_size[1]) else 0
    return apply_cps_draws(image, label, crop_size, flip, scale, (top, left))


def cps_val_transform(image: np.ndarray, label: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return to_chw(normalize_rgb(image)), np.ascontiguousarray(label, dtype=np.int64)
