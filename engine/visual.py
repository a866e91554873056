"""A few validation pictures per validation (image | ground truth | prediction) for TensorBoard."""
from __future__ import annotations

import numpy as np

from utils.visualize import colorize, denormalize, strip


class ValidationPictures:
    def __init__(self, board, palette, ignore_index: int, count: int) -> None:
        self.board, self.palette, self.ignore_index, self.count = board, palette, ignore_index, count
        self.step = 0

    def begin(self, step: int) -> None:
        self.step = step

    def on_image(self, index, images, labels, pred, names) -> None:
        if index >= self.count or self.board.writer is None:
            return
        rgb = denormalize(images[0].float().cpu().numpy())
        gt = colorize(labels[0].cpu().numpy(), self.palette, self.ignore_index)
        pr = colorize(pred[0].cpu().numpy().astype(np.int64), self.palette, self.ignore_index)
        self.board.image("val/%d" % index, strip([rgb, gt, pr]), self.step)
