"""Validation loop used by training and ``eval.py``: predict, accumulate the confusion matrix."""
from __future__ import annotations

import contextlib
from typing import Callable, Optional

import torch
from torch import nn

from .inference import predict
from .score import SegmentationMetric


def autocast_context(device: torch.device, amp: str):
    if amp in (None, "none"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, ignore_index: int, device: torch.device,
             mode: str = "whole", scales=(1.0,), flip: bool = False, crop=(512, 1024), stride=(341, 682),
             amp: str = "none", on_image: Optional[Callable] = None, progress: bool = False) -> SegmentationMetric:
    """Run the model over ``loader`` (batches of (image, label, name)) and return the all-reduced metric.

    ``on_image(index, image, label, pred, name)`` is called per image (for pictures / prediction files).
    """
    was_training = model.training
    model.eval()
    metric = SegmentationMetric(num_classes, ignore_index=ignore_index, device=device)
    iterator = loader
    if progress:
        from tqdm import tqdm
        iterator = tqdm(loader, desc="eval", dynamic_ncols=True)
    for index, (images, labels, names) in enumerate(iterator):
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with autocast_context(device, amp):
            scores = predict(model, images, num_classes, mode=mode, scales=scales, flip=flip,
                             crop=crop, stride=stride)
        pred = scores.float().argmax(1)
        metric.update(pred, labels)
        if on_image is not None:
            on_image(index, images, labels, pred, names)
    metric.all_reduce()
    model.train(was_training)
    return metric
