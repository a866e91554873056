"""mmsegmentation 0.26's training and test pipelines, step for step, on SegKD's arrays.

Train (every mmseg config BPKD uses: ``Resize(img_scale, ratio_range=(0.5, 2.0))``,
``RandomCrop(crop, cat_max_ratio=0.75)``, ``RandomFlip(0.5)``, ``PhotoMetricDistortion``,
``Normalize``, ``Pad(crop, 0, seg 255)``):
  1. ratio r = U[0.5, 2.0); target (w, h) = (int(W_s r), int(H_s r)) from ``img_scale`` (W_s, H_s);
     keep-ratio factor f = min(max(target) / long side, min(target) / short side); new size
     (int(w f + 0.5), int(h f + 0.5)); ``cv2.resize`` to that size, image bilinear on uint8,
     label nearest (mmcv ``imrescale``);
  2. random crop (offsets randint(0, margin + 1), no padding first, so a crop may be smaller);
     re-drawn up to 10 times until no class covers >= 75 % of the crop's labelled pixels
     (and more than one class is present);
  3. horizontal flip when U[0, 1) < 0.5;
  4. photometric distortion on the uint8 BGR crop: brightness (p 1/2, beta U[-32, 32]); a coin
     for contrast first (1) or last (0); saturation (p 1/2, alpha U[0.5, 1.5] on HSV's S);
     hue (p 1/2, delta randint(-18, 18) mod 180); contrast (p 1/2, alpha U[0.5, 1.5]);
     every step ``uint8(clip(float32(x) * alpha + beta, 0, 255))``;
  5. RGB ``(x - mean) / std`` with ImageNet mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375);
  6. pad bottom/right to the crop: image 0, label ignore.
Test (``MultiScaleFlipAug`` single scale, no flip): the image alone is rescaled (keep ratio) to
``img_scale`` and normalised; the label stays at its original size (the prediction is resized to it).

Random draws go through ``Draws`` in exactly mmseg's call order and kinds (``random_sample``,
``randint``, ``rand``, ``uniform``), so a ``numpy.random.RandomState`` seeded like mmseg's global
state reproduces mmseg's crops and colours bit for bit (``tests/test_mmseg_pipeline.py`` checks
outputs recorded from mmseg 0.26 itself). Labels here use -1 for ignore where mmseg uses 255.
Difference from mmseg: ``Normalize`` divides in float32 (mmcv multiplies by a float64 reciprocal
through cv2), a difference of at most one float32 ulp.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import cv2
import numpy as np

from .transforms import IGNORE_INDEX, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, normalize_rgb, pad_to_crop, to_chw

MMSEG_MEAN_RGB, MMSEG_STD_RGB = IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
RATIO_RANGE = (0.5, 2.0)
CAT_MAX_RATIO = 0.75
CROP_RETRIES = 10
BRIGHTNESS_DELTA = 32
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 18


class Draws:
    """mmseg's random calls on a ``numpy.random.Generator`` (training) or a ``RandomState`` (parity).

    ``random()`` is ``random_sample``/``rand``; ``randint(low, high)`` excludes ``high``."""

    def __init__(self, source: Union[np.random.Generator, np.random.RandomState]) -> None:
        self.source = source
        self.legacy = isinstance(source, np.random.RandomState)

    def random(self) -> float:
        return float(self.source.random_sample() if self.legacy else self.source.random())

    def randint(self, low: int, high: int) -> int:
        return int(self.source.randint(low, high) if self.legacy else self.source.integers(low, high))

    def uniform(self, low: float, high: float) -> float:
        return float(self.source.uniform(low, high))


def keep_ratio_size(height: int, width: int, scale_wh: Sequence[int]) -> Tuple[int, int]:
    """(new_h, new_w) of mmcv ``rescale_size``: the largest size that fits ``scale`` keeping the ratio."""
    long_edge, short_edge = max(scale_wh), min(scale_wh)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * float(factor) + 0.5), int(width * float(factor) + 0.5)


def resize_to(image: np.ndarray, size_hw: Tuple[int, int], nearest: bool = False) -> np.ndarray:
    if tuple(image.shape[:2]) == tuple(size_hw):
        return image
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(image, (int(size_hw[1]), int(size_hw[0])), interpolation=interpolation)


def random_scale(img_scale_wh: Sequence[int], draws: Draws) -> Tuple[int, int]:
    low, high = RATIO_RANGE
    ratio = draws.random() * (high - low) + low
    return int(img_scale_wh[0] * ratio), int(img_scale_wh[1] * ratio)


def crop_box(shape_hw: Sequence[int], crop_size: Sequence[int], draws: Draws) -> Tuple[int, int, int, int]:
    top = draws.randint(0, max(int(shape_hw[0]) - int(crop_size[0]), 0) + 1)
    left = draws.randint(0, max(int(shape_hw[1]) - int(crop_size[1]), 0) + 1)
    return top, top + int(crop_size[0]), left, left + int(crop_size[1])


def category_balanced_crop(label: np.ndarray, crop_size: Sequence[int], draws: Draws) -> Tuple[int, int, int, int]:
    box = crop_box(label.shape, crop_size, draws)
    for _ in range(CROP_RETRIES):
        window = label[box[0]:box[1], box[2]:box[3]]
        classes, counts = np.unique(window, return_counts=True)
        counts = counts[classes != IGNORE_INDEX]
        if len(counts) > 1 and np.max(counts) / np.sum(counts) < CAT_MAX_RATIO:
            break
        box = crop_box(label.shape, crop_size, draws)
    return box


def _convert(values: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    return np.clip(values.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def photometric_distortion(image: np.ndarray, draws: Draws) -> np.ndarray:
    """mmseg ``PhotoMetricDistortion`` on a uint8 BGR image (draw order as mmseg)."""
    if draws.randint(0, 2):
        image = _convert(image, beta=draws.uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA))
    contrast_first = draws.randint(0, 2) == 1

    def contrast(img: np.ndarray) -> np.ndarray:
        if draws.randint(0, 2):
            return _convert(img, alpha=draws.uniform(*CONTRAST_RANGE))
        return img

    if contrast_first:
        image = contrast(image)
    if draws.randint(0, 2):
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        hsv[:, :, 1] = _convert(hsv[:, :, 1], alpha=draws.uniform(*SATURATION_RANGE))
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if draws.randint(0, 2):
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + draws.randint(-HUE_DELTA, HUE_DELTA)) % 180
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if not contrast_first:
        image = contrast(image)
    return image


def mmseg_train_transform(image: np.ndarray, label: np.ndarray, crop_size: Sequence[int],
                          img_scale_wh: Sequence[int], draws: Draws) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 BGR image + int label (-1 ignore) -> (3, crop_h, crop_w) float32 RGB, int64 label."""
    size = keep_ratio_size(image.shape[0], image.shape[1], random_scale(img_scale_wh, draws))
    image = resize_to(image, size)
    label = resize_to(label.astype(np.int32, copy=False), size, nearest=True)
    top, bottom, left, right = category_balanced_crop(label, crop_size, draws)
    image, label = image[top:bottom, left:right], label[top:bottom, left:right]
    if draws.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    image = normalize_rgb(photometric_distortion(np.ascontiguousarray(image), draws))
    image, label = pad_to_crop(image, label, crop_size)
    return to_chw(image), np.ascontiguousarray(label, dtype=np.int64)


def mmseg_test_transform(image: np.ndarray, label: np.ndarray, img_scale_wh: Sequence[int]
                         ) -> Tuple[np.ndarray, np.ndarray]:
    """The image rescaled (keep ratio) to ``img_scale`` and normalised; the label untouched."""
    image = resize_to(image, keep_ratio_size(image.shape[0], image.shape[1], img_scale_wh))
    return to_chw(normalize_rgb(image)), np.ascontiguousarray(label, dtype=np.int64)
