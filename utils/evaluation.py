"""Validation loop used by training and ``eval.py``: predict, feed an evaluator, report its figures.

Scores are brought to the label's size when the pipeline resized the image (mmseg's test
resize): bilinear with the model's ``align_corners``, as mmseg's ``rescale``. The label map comes from the model's own rule (``model.predict(scores)``, argmax by default) and
the logits are resized with the model's ``align_corners`` (``model.meta``); nothing here imports
``models``: both are read from the built model's attributes.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .evaluators import Evaluator
from .inference import align_corners_of, predict, unwrap


def autocast_context(device: torch.device, amp: str):
    if amp in (None, "none"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def label_map(model: nn.Module, scores: torch.Tensor) -> torch.Tensor:
    """(N, K, H, W) scores -> (N, H, W) labels by the model's ``predict`` rule (default argmax)."""
    rule = getattr(unwrap(model), "predict", None)
    return rule(scores) if callable(rule) else scores.argmax(1)


@torch.no_grad()
def evaluate(model: nn.Module, loader, evaluator: Evaluator, device: torch.device,
             mode: str = "whole", scales=(1.0,), flip: bool = False, crop=(512, 1024), stride=(341, 682),
             amp: str = "none", on_image: Optional[Callable] = None, progress: bool = False,
             slide_pad: str = "corner") -> Dict[str, object]:
    """Run the model over ``loader`` (batches of (image, label, name)); the evaluator's figures
    over all processes.

    ``on_image(index, image, label, pred, name)`` is called per image (for pictures / prediction files).
    """
    was_training = model.training
    model.eval()
    evaluator.reset(device)
    num_classes = getattr(evaluator, "num_classes", None)
    iterator = loader
    if progress:
        from tqdm import tqdm
        iterator = tqdm(loader, desc="eval", dynamic_ncols=True)
    for index, batch in enumerate(iterator):
        if batch is None:       # a damaged image skipped by --on-bad-sample skip
            continue
        images, labels, names = batch
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with autocast_context(device, amp):
            scores = predict(model, images, num_classes, mode=mode, scales=scales, flip=flip,
                             crop=crop, stride=stride, slide_pad=slide_pad)
        if scores.shape[-2:] != labels.shape[-2:]:
            scores = F.interpolate(scores.float(), size=labels.shape[-2:], mode="bilinear",
                                   align_corners=align_corners_of(model))
        pred = label_map(model, scores.float())
        evaluator.process(pred, labels)
        if on_image is not None:
            on_image(index, images, labels, pred, names)
    figures = evaluator.result()
    model.train(was_training)
    return figures
