"""Pictures of predictions: palette PNGs, overlays, and image | label | prediction strips."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

# CIRKD-family normalisation: BGR minus this mean, no std.
MEAN_BGR = np.array([104.00699, 116.66877, 122.67891], dtype=np.float32)


def colorize(label: np.ndarray, palette: np.ndarray, ignore_index: int = -1) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB; ignore / out-of-range pixels are black."""
    palette = np.asarray(palette, dtype=np.uint8)
    out = np.zeros(label.shape + (3,), dtype=np.uint8)
    valid = (label != ignore_index) & (label >= 0) & (label < len(palette))
    out[valid] = palette[label[valid]]
    return out


def denormalize(image_chw: np.ndarray) -> np.ndarray:
    """Network input (3, H, W) BGR-minus-mean -> (H, W, 3) uint8 RGB."""
    bgr = image_chw.transpose(1, 2, 0) + MEAN_BGR
    return np.clip(bgr[:, :, ::-1], 0, 255).astype(np.uint8)


def picture_of(image_chw: np.ndarray, size_hw=None, pipeline=None) -> np.ndarray:
    """A network input back to (H, W, 3) uint8 RGB, by ``pipeline.to_rgb_uint8`` (CIRKD's when None),
    resized to ``size_hw`` when the pipeline resized the image (mmseg's test scale)."""
    rgb = pipeline.to_rgb_uint8(image_chw) if pipeline is not None else denormalize(image_chw)
    if size_hw is not None and tuple(rgb.shape[:2]) != tuple(size_hw):
        rgb = np.asarray(Image.fromarray(rgb).resize((int(size_hw[1]), int(size_hw[0])), Image.BILINEAR))
    return rgb


def overlay(rgb: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return (rgb.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha).astype(np.uint8)


def strip(panels: Sequence[np.ndarray]) -> np.ndarray:
    """Panels side by side with a 4-pixel white gap."""
    h = max(p.shape[0] for p in panels)
    gap = np.full((h, 4, 3), 255, dtype=np.uint8)
    parts = []
    for p in panels:
        if p.shape[0] != h:
            p = np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0)))
        parts += [p, gap]
    return np.concatenate(parts[:-1], axis=1)


def save_palette_png(label: np.ndarray, palette: np.ndarray, path: str) -> None:
    """Indexed PNG (mode 'P') whose pixel values are the class ids."""
    img = Image.fromarray(label.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), dtype=np.uint8)
    flat[:len(palette)] = np.asarray(palette, dtype=np.uint8)[:256]
    img.putpalette(flat.reshape(-1).tolist())
    img.save(path)
