"""DKD's pipeline (cvlab-yonsei/DKD@fb4693f ``data_loader/custom_transforms.py``, ``data_loaders.py``).

Train: ``RandomResizedCrop(crop, scale=(0.5, 2.0), ratio=(3/4, 4/3))`` (torchvision's draw: up to 10
tries of area fraction U(scale) and log-uniform aspect until the box fits, else a centred box of
the clamped aspect), resized to the crop (image bilinear, label nearest), horizontal flip p 1/2,
RGB ImageNet mean/std. Test: resize the short side to the crop (label nearest), centre crop
(torchvision's rounding), the same normalisation; the label is cropped with the image (DKD scores
the 512x512 centre crop). Draws come from a numpy Generator (officially Python's ``random``).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import cv2
import numpy as np

from .transforms import normalize_rgb, to_chw

SCALE = (0.5, 2.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)


def resized_crop_box(height: int, width: int, rng: np.random.Generator) -> Tuple[int, int, int, int]:
    area = height * width
    for _ in range(10):
        target = rng.uniform(*SCALE) * area
        aspect = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if w <= width and h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    ratio = width / height
    if ratio < min(RATIO):
        w, h = width, int(round(width / min(RATIO)))
    elif ratio > max(RATIO):
        h, w = height, int(round(height * max(RATIO)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def dkd_train_transform(image: np.ndarray, label: np.ndarray, crop_size: Sequence[int],
                        rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    top, left, h, w = resized_crop_box(image.shape[0], image.shape[1], rng)
    size = (int(crop_size[1]), int(crop_size[0]))
    image = cv2.resize(np.ascontiguousarray(image[top:top + h, left:left + w]), size, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(np.ascontiguousarray(label[top:top + h, left:left + w], dtype=np.int32), size,
                       interpolation=cv2.INTER_NEAREST)
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return to_chw(normalize_rgb(np.ascontiguousarray(image))), np.ascontiguousarray(label, dtype=np.int64)


def dkd_test_transform(image: np.ndarray, label: np.ndarray, crop: int) -> Tuple[np.ndarray, np.ndarray]:
    height, width = image.shape[:2]
    if height <= width:
        size = (int(crop * width / height), crop)
    else:
        size = (crop, int(crop * height / width))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label.astype(np.int32), size, interpolation=cv2.INTER_NEAREST)
    top = int(round((image.shape[0] - crop) / 2.0))
    left = int(round((image.shape[1] - crop) / 2.0))
    image, label = image[top:top + crop, left:left + crop], label[top:top + crop, left:left + crop]
    return to_chw(normalize_rgb(np.ascontiguousarray(image))), np.ascontiguousarray(label, dtype=np.int64)
