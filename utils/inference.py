"""Inference protocols shared by validation and ``eval.py``.

- whole: one forward on the full image; ``outputs[0]`` upsampled bilinearly to the image size with
  the model's ``meta.align_corners`` (True for the CIRKD/Af-DCD protocol, batch 1, full resolution).
- slide: windows of ``crop`` (H, W) every ``stride`` pixels; window logits are upsampled to the
  window, summed and divided by the number of windows covering each pixel. An image smaller than
  the crop is zero-padded (the mean colour) bottom/right (``pad="corner"``, CIRKD), centred
  (``"center"``, the CPS/MGD evaluator; the padding is cut off again), or not at all (``"none"``:
  the window shrinks to the image, mmseg's ``slide_inference``).
- scales / flip: the image is resized by each scale (bilinear, the model's align_corners), predicted with
  the chosen mode (and its horizontal mirror), brought back to the image size; softmax
  probabilities are averaged (as Af-DCD's ``eval.py``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _logits(model: nn.Module, image: Tensor) -> Tensor:
    out = model(image)
    return out[0] if isinstance(out, (list, tuple)) else out


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (the model itself otherwise)."""
    return model.module if isinstance(getattr(model, "module", None), nn.Module) else model


def align_corners_of(model: nn.Module) -> bool:
    return bool(getattr(getattr(unwrap(model), "meta", None), "align_corners", True))


def predict_whole(model: nn.Module, image: Tensor) -> Tensor:
    logits = _logits(model, image)
    return F.interpolate(logits.float(), size=image.shape[-2:], mode="bilinear", align_corners=align_corners_of(model))


SLIDE_PADS = ("corner", "center", "none")


def predict_slide(model: nn.Module, image: Tensor, crop: Tuple[int, int], stride: Tuple[int, int],
                  num_classes: Optional[int] = None, pad: str = "corner") -> Tensor:
    if pad not in SLIDE_PADS:
        raise ValueError("slide padding must be one of %s, got %r" % (SLIDE_PADS, pad))
    n, _, h, w = image.shape
    ch, cw = min(crop[0], h), min(crop[1], w)
    pad_h, pad_w = max(crop[0] - h, 0), max(crop[1] - w, 0)
    top = left = 0
    if pad != "none" and (pad_h or pad_w):  # zero = the mean colour after normalisation
        if pad == "center":
            top, left = pad_h // 2, pad_w // 2
        image = F.pad(image, (left, pad_w - left, top, pad_h - top))
        ch, cw = crop
    ph, pw = image.shape[-2:]
    sh, sw = stride
    rows = max(-(-(ph - ch) // sh), 0) + 1
    cols = max(-(-(pw - cw) // sw), 0) + 1
    total = None    # (n, K, ph, pw); K from the first window (num_classes is only a hint)
    count = image.new_zeros((1, 1, ph, pw), dtype=torch.float32)
    for r in range(rows):
        for c in range(cols):
            y0 = min(r * sh, ph - ch)
            x0 = min(c * sw, pw - cw)
            window = image[:, :, y0:y0 + ch, x0:x0 + cw]
            window_scores = predict_whole(model, window)
            if total is None:
                total = image.new_zeros((n, window_scores.shape[1], ph, pw), dtype=torch.float32)
            total[:, :, y0:y0 + ch, x0:x0 + cw] += window_scores
            count[:, :, y0:y0 + ch, x0:x0 + cw] += 1
    return (total / count)[:, :, top:top + h, left:left + w]


@torch.no_grad()
def predict(model: nn.Module, image: Tensor, num_classes: Optional[int], mode: str = "whole",
            scales: Sequence[float] = (1.0,), flip: bool = False,
            crop: Tuple[int, int] = (512, 1024), stride: Tuple[int, int] = (341, 682),
            slide_pad: str = "corner") -> Tensor:
    """Class scores (N, K, H, W) at the image size: logits for one plain pass, else mean probabilities."""
    if mode not in ("whole", "slide"):
        raise ValueError("--mode must be 'whole' or 'slide', got %r" % mode)
    size = image.shape[-2:]

    def once(x: Tensor) -> Tensor:
        if mode == "whole":
            return predict_whole(model, x)
        return predict_slide(model, x, crop, stride, num_classes, pad=slide_pad)

    if list(scales) == [1.0] and not flip:
        return once(image)
    probs = None
    corners = align_corners_of(model)
    for s in scales:
        x = image if s == 1.0 else F.interpolate(
            image, size=(int(size[0] * s + 0.5), int(size[1] * s + 0.5)), mode="bilinear", align_corners=corners)
        views = [(x, False)] + ([(x.flip(-1), True)] if flip else [])
        for view, flipped in views:
            score = once(view)
            if flipped:
                score = score.flip(-1)
            score = F.interpolate(score, size=size, mode="bilinear", align_corners=corners).softmax(1)
            probs = score if probs is None else probs + score
    return probs
