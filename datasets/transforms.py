"""The one preprocessing/augmentation pipeline shared by every dataset (CIRKD's, step for step).

Input: a BGR uint8 image (cv2) and an int32 label of train ids with -1 ignore.
Train (``train_transform``; CIRKD ``*TrainSet.__getitem__``):
  1. random scale f = 0.5 + randint(0, 15) / 10 in {0.5, 0.6, ..., 2.0}; ``cv2.resize(fx=fy=f)``,
     image bilinear (INTER_LINEAR, on uint8 as CIRKD does), label nearest;
  2. float32 image minus the BGR mean (104.00698793, 116.66876762, 122.67891434), no std;
  3. pad bottom/right to the crop size: image 0 (i.e. the mean colour), label -1;
  4. random crop: top offset randint(0, H - crop_h), left offset randint(0, W - crop_w);
  5. random horizontal flip with probability 1/2.
Val (``val_transform``): steps 2 only, full image, no scaling.
Output: image float32 (3, H, W) C-contiguous, label int64 (H, W). The mean is subtracted in
float32 (CIRKD subtracts in float64 and casts; the two differ by at most one float32 ulp).

Random draws come from a numpy ``Generator`` in the order scale, top, left, flip, so a caller
that seeds it gets identical crops everywhere; ``apply_draws`` takes the draws explicitly.
Difference from CIRKD: CIRKD's ADE20K loader pads the label with the ignore value before
subtracting 1 (padding then reads -2 if the pad value survived); here labels are mapped to
train ids first, so padding is always -1.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import cv2
import numpy as np

MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434], np.float32)
SCALES = tuple(0.5 + step / 10.0 for step in range(16))
IGNORE_INDEX = -1       # the framework's one ignore value (labels are mapped to it when read)

cv2.setNumThreads(1)    # as CIRKD: parallelism comes from DataLoader workers, cv2 threads only oversubscribe


def draw_scale(rng: np.random.Generator) -> float:
    return 0.5 + int(rng.integers(0, 16)) / 10.0


def rescale(image: np.ndarray, label: np.ndarray, scale: float) -> Tuple[np.ndarray, np.ndarray]:
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label.astype(np.int32, copy=False), None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_NEAREST)
    return image, label


def normalize(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) - MEAN_BGR


# RGB ImageNet mean / std in pixel units: mmseg's Normalize and CPS / MGD's x/255 normalisation alike
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)


def normalize_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR -> float32 RGB ``(x - mean) / std`` (the mmseg, CPS and DKD pipelines)."""
    rgb = image_bgr[:, :, ::-1].astype(np.float32)
    return (rgb - np.float32(IMAGENET_MEAN_RGB)) / np.float32(IMAGENET_STD_RGB)


def pad_to_crop(image: np.ndarray, label: np.ndarray, crop_size: Sequence[int]
                ) -> Tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right so both sides reach the crop; image with 0, label with -1."""
    pad_h = max(int(crop_size[0]) - label.shape[0], 0)
    pad_w = max(int(crop_size[1]) - label.shape[1], 0)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=0.0)
        label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
    return image, label


def crop_and_flip(image: np.ndarray, label: np.ndarray, crop_size: Sequence[int],
                  crop_yx: Tuple[int, int], flip: bool) -> Tuple[np.ndarray, np.ndarray]:
    crop_h, crop_w = int(crop_size[0]), int(crop_size[1])
    top, left = int(crop_yx[0]), int(crop_yx[1])
    if not (0 <= top <= label.shape[0] - crop_h and 0 <= left <= label.shape[1] - crop_w):
        raise ValueError("crop offset %r does not fit a %dx%d crop into %dx%d"
                         % (crop_yx, crop_h, crop_w, label.shape[0], label.shape[1]))
    image = image[top:top + crop_h, left:left + crop_w]
    label = label[top:top + crop_h, left:left + crop_w]
    if flip:
        image = image[:, ::-1]
        label = label[:, ::-1]
    return to_chw(image), np.ascontiguousarray(label, dtype=np.int64)


def to_chw(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


def apply_draws(image: np.ndarray, label: np.ndarray, crop_size: Sequence[int], scale: float,
                crop_yx: Tuple[int, int], flip: bool) -> Tuple[np.ndarray, np.ndarray]:
    """The training pipeline with explicit draws (crop_yx indexes the scaled, padded image)."""
    image, label = rescale(image, label, scale)
    image, label = pad_to_crop(normalize(image), label, crop_size)
    return crop_and_flip(image, label, crop_size, crop_yx, flip)


def train_transform(image: np.ndarray, label: np.ndarray, crop_size: Sequence[int],
                    rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Random scale, pad, crop, flip with draws from ``rng`` (order: scale, top, left, flip)."""
    image, label = rescale(image, label, draw_scale(rng))
    image, label = pad_to_crop(normalize(image), label, crop_size)
    top = int(rng.integers(0, label.shape[0] - int(crop_size[0]) + 1))
    left = int(rng.integers(0, label.shape[1] - int(crop_size[1]) + 1))
    flip = bool(rng.integers(0, 2))
    return crop_and_flip(image, label, crop_size, (top, left), flip)


def val_transform(image: np.ndarray, label: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Full image, same normalisation, no scaling."""
    return to_chw(normalize(image)), np.ascontiguousarray(label, dtype=np.int64)
