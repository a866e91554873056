"""Named data pipelines: CIRKD's (the default), mmsegmentation 0.26's and CPS/MGD's, by ``--pipeline``.

A pipeline turns a uint8 BGR image and an int label (-1 ignore) into the network input tensor
and the training label, and says how that tensor is normalised (``mean``, ``std``, ``rgb``): each
network converts it into its own normalisation exactly (``models.meta.set_input_source``), so an
mmseg teacher behind the CIRKD pipeline, or a CIRKD student behind the mmseg one, sees what it
was trained on.

    pipeline = build_pipeline("mmseg", dataset_info)          # img_scale from the dataset
    image, label = pipeline.train(image_bgr, label, crop_size, rng)
    image, label = pipeline.val(image_bgr, label)             # label keeps the original size

=========  ==========================================  ============================================
name       train                                       val
=========  ==========================================  ============================================
cirkd      scale {0.5,...,2.0}, BGR - mean, pad, crop,  full image, BGR - mean
           flip (``transforms.py``)
mmseg      ratio resize from ``img_scale``, cat-ratio  image rescaled to ``img_scale`` (keep ratio),
           crop, flip, photometric, RGB mean/std, pad  RGB mean/std; slide windows are not padded
           (``mmseg_transforms.py``)
cps        flip, scale {0.5..2}, RGB mean/std, crop,   full image, RGB mean/std; slide pads centred
           centred pad (``cps_transforms.py``; MGD)    (MGD / CPS evaluator)
dkd        random resized crop (area 0.5..2), flip,    short side to the crop, centre crop (image and
           RGB mean/std (``dkd_transforms.py``)        label), RGB mean/std
=========  ==========================================  ============================================
"""
from __future__ import annotations

import abc
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .cps_transforms import CPS_MEAN_RGB, CPS_STD_RGB, cps_train_transform, cps_val_transform
from .dkd_transforms import dkd_test_transform, dkd_train_transform
from .mmseg_transforms import (MMSEG_MEAN_RGB, MMSEG_STD_RGB, Draws, mmseg_test_transform,
                               mmseg_train_transform)
from .transforms import MEAN_BGR, train_transform, val_transform

Arrays = Tuple[np.ndarray, np.ndarray]


class Pipeline(abc.ABC):
    name = ""
    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)   # in the channel order of ``rgb``
    std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    rgb = False
    slide_pad = "corner"    # slide inference: pad a small image bottom/right (CIRKD), not at all (mmseg) or centred (CPS)

    @abc.abstractmethod
    def train(self, image: np.ndarray, label: np.ndarray, crop_size: Sequence[int],
              rng: np.random.Generator) -> Arrays:
        """A training sample: the augmented image (3, H, W) float32 and label (H, W) int64."""

    @abc.abstractmethod
    def val(self, image: np.ndarray, label: np.ndarray) -> Arrays:
        """A validation sample (the label may keep the original size, see the table above)."""

    def to_rgb_uint8(self, image_chw: np.ndarray) -> np.ndarray:
        """A network input (3, H, W) back to a picture (H, W, 3) uint8 RGB."""
        pixels = image_chw.transpose(1, 2, 0) * np.float32(self.std) + np.float32(self.mean)
        if not self.rgb:
            pixels = pixels[:, :, ::-1]
        return np.clip(pixels, 0, 255).astype(np.uint8)

    def describe(self) -> str:
        return self.name


class CirkdPipeline(Pipeline):
    name = "cirkd"
    mean = tuple(float(v) for v in MEAN_BGR)

    def train(self, image, label, crop_size, rng) -> Arrays:
        return train_transform(image, label, crop_size, rng)

    def val(self, image, label) -> Arrays:
        return val_transform(image, label)


class MmsegPipeline(Pipeline):
    name = "mmseg"
    mean, std, rgb = MMSEG_MEAN_RGB, MMSEG_STD_RGB, True
    slide_pad = "none"

    def __init__(self, img_scale_wh: Sequence[int]) -> None:
        if len(img_scale_wh) != 2 or min(int(v) for v in img_scale_wh) <= 0:
            raise ValueError("--img-scale must be two positive ints W H (mmseg's img_scale), got %r"
                             % (tuple(img_scale_wh),))
        self.img_scale = (int(img_scale_wh[0]), int(img_scale_wh[1]))

    def train(self, image, label, crop_size, rng) -> Arrays:
        return mmseg_train_transform(image, label, crop_size, self.img_scale, Draws(rng))

    def val(self, image, label) -> Arrays:
        return mmseg_test_transform(image, label, self.img_scale)

    def describe(self) -> str:
        return "mmseg (img_scale %dx%d)" % self.img_scale


class CpsPipeline(Pipeline):
    name = "cps"
    mean, std, rgb = CPS_MEAN_RGB, CPS_STD_RGB, True
    slide_pad = "center"

    def train(self, image, label, crop_size, rng) -> Arrays:
        return cps_train_transform(image, label, crop_size, rng)

    def val(self, image, label) -> Arrays:
        return cps_val_transform(image, label)


class DkdPipeline(Pipeline):
    name = "dkd"
    mean, std, rgb = CPS_MEAN_RGB, CPS_STD_RGB, True

    def __init__(self, test_crop: int = 512) -> None:
        self.test_crop = int(test_crop)

    def train(self, image, label, crop_size, rng) -> Arrays:
        return dkd_train_transform(image, label, crop_size, rng)

    def val(self, image, label) -> Arrays:
        return dkd_test_transform(image, label, self.test_crop)


PIPELINE_NAMES = ("cirkd", "mmseg", "cps", "dkd")


def build_pipeline(name: str = "cirkd", info=None, img_scale: Optional[Sequence[int]] = None,
                   crop_size: Optional[Sequence[int]] = None) -> Pipeline:
    """The pipeline ``name``; mmseg's ``img_scale`` (W, H) defaults to the dataset's (``info``); DKD's
    test crop is the training crop (``crop_size``, default the dataset's)."""
    if name not in PIPELINE_NAMES:
        raise ValueError("unknown --pipeline %r; choose one of %s" % (name, ", ".join(PIPELINE_NAMES)))
    if name != "mmseg" and img_scale is not None:
        raise ValueError("--img-scale belongs to --pipeline mmseg; the %s pipeline scales the image itself" % name)
    if name == "cirkd":
        return CirkdPipeline()
    if name == "cps":
        return CpsPipeline()
    if name == "dkd":
        crop = crop_size or (info.default_crop if info is not None else (512, 512))
        return DkdPipeline(int(crop[0]))
    if img_scale is None:
        if info is None:
            raise ValueError("the mmseg pipeline needs an img_scale (W H) or the dataset's info")
        img_scale = info.mmseg_img_scale
    return MmsegPipeline(img_scale)


def pipeline_of(args) -> Pipeline:
    """The pipeline a run's flags choose (``--pipeline``, ``--img-scale``, ``--crop-size``, ``--dataset``)."""
    from . import get_dataset_info
    crop = getattr(args, "crop_size", None)
    return build_pipeline(getattr(args, "pipeline", "cirkd"), get_dataset_info(args.dataset),
                          getattr(args, "img_scale", None), tuple(crop) if crop else None)


PIPELINES: Dict[str, type] = {"cirkd": CirkdPipeline, "mmseg": MmsegPipeline, "cps": CpsPipeline, "dkd": DkdPipeline}
