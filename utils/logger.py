"""Readable logs: a text log file plus stdout on rank 0, and TensorBoard scalars and images."""
from __future__ import annotations

import logging
import os
import sys
from typing import Dict, Optional

import numpy as np


def setup_logger(name: str, log_dir: Optional[str], filename: str, is_main: bool) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if is_main else logging.ERROR)
    fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if is_main and log_dir:
        os.makedirs(log_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(log_dir, filename))
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger


class Board:
    """TensorBoard writer that does nothing off rank 0 or when tensorboard is not installed."""

    def __init__(self, log_dir: Optional[str], enabled: bool) -> None:
        self.writer = None
        if enabled and log_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional at run time
                return
            self.writer = SummaryWriter(log_dir)

    def scalars(self, values: Dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def image(self, tag: str, hwc_uint8: np.ndarray, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, hwc_uint8, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
