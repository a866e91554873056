"""A few validation pictures per validation (image | ground truth | prediction) for TensorBoard."""
from __future__ import annotations

import numpy as np

from utils.visualize import colorize, picture_of, strip


class ValidationPictures:
    def __init__(self, board, palette, ignore_index: int, count: int, pipeline=None) -> None:
        self.board, self.palette, self.ignore_index, self.count = board, palette, ignore_index, count
        self.pipeline = pipeline
        self.step = 0

    def begin(self, step: int) -> None:
        self.step = step

    def on_image(self, index, images, labels, pred, names) -> None:
        if index >= self.count or self.board.writer is None:
            return
        gt = colorize(labels[0].cpu().numpy(), self.palette, self.ignore_index)
        rgb = picture_of(images[0].float().cpu().numpy(), gt.shape[:2], self.pipeline)
        pr = colorize(pred[0].cpu().numpy().astype(np.int64), self.palette, self.ignore_index)
        self.board.image("val/%d" % index, strip([rgb, gt, pr]), self.step)
