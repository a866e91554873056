"""Build what a run needs from parsed flags: networks, data loaders, the distillation method."""
from __future__ import annotations

import argparse
import os
from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

import losses
from datasets import DatasetError, IterationSampler, build_dataset, collate, get_dataset_info
from models import CheckpointError, get_segmentation_model
from utils.distributed import DistInfo



class BuildError(RuntimeError):
    """A flag or file that makes the run impossible; the message says what to do."""


def _path_or_none(value: Optional[str]) -> Optional[str]:
    return None if value in (None, "", "None", "none") else value


def build_network(model: str, backbone: str, num_classes: int, aux: bool, pretrained: Optional[str],
                  pretrained_base: Optional[str] = None, head_width=None, role: str = "student") -> nn.Module:
    pretrained = _path_or_none(pretrained)
    pretrained_base = _path_or_none(pretrained_base)
    for flag, path in (("pretrained", pretrained), ("pretrained-base", pretrained_base)):
        if path is not None and not os.path.isfile(path):
            raise BuildError("--%s-%s %s does not exist; download it into pretrained_ckpt/ (see README) "
                             "or pass None" % (role, flag, path))
    if head_width is not None and str(head_width).isdigit():
        head_width = int(head_width)
    try:
        return get_segmentation_model(model, backbone, num_class=num_classes, aux=aux,
                                      norm_layer=nn.BatchNorm2d, pretrained_base=pretrained_base,
                                      pretrained=pretrained, head_width=head_width)
    except CheckpointError as exc:
        raise BuildError("%s: %s" % (role, str(exc).splitlines()[0])) from exc
    except (KeyError, ValueError) as exc:
        raise BuildError("--%s-model %s / --%s-backbone %s: %s" % (role, model, role, backbone, exc)) from exc


def build_teachers(args: argparse.Namespace, count: int, device: torch.device) -> List[nn.Module]:
    specs = [("teacher", args.teacher_model, args.teacher_backbone, args.teacher_pretrained, args.teacher_head_width),
             ("teacher2", args.teacher2_model or args.teacher_model, args.teacher2_backbone or args.teacher_backbone,
              args.teacher2_pretrained, args.teacher_head_width)]
    teachers = []
    for role, model, backbone, ckpt, width in specs[:count]:
        if _path_or_none(ckpt) is None and not args.allow_random_teacher:
            raise BuildError("--kd-method %s needs a trained teacher: pass --%s-pretrained FILE (e.g. "
                             "pretrained_ckpt/deeplabv3_resnet101_citys_best_model.pth), or "
                             "--allow-random-teacher for a smoke test" % (args.kd_method, role))
        # Teachers keep their aux head so the released checkpoints (which contain it) load strictly.
        net = build_network(model, backbone, args.num_classes, aux=backbone.startswith("resnet"),
                            pretrained=ckpt, head_width=width, role=role)
        net.to(device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        teachers.append(net)
    return teachers


def build_method(args: argparse.Namespace, student: Optional[nn.Module], teachers: List[nn.Module],
                 device: torch.device) -> losses.DistillMethod:
    # Output name -> channels; every model declares it (CIRKD measured it with a dummy forward).
    student_info = dict(student.out_channels) if student is not None else None
    teacher_info = dict(teachers[0].out_channels) if teachers else None
    try:
        method = losses.build_method(args, student_info, teacher_info)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise BuildError("--kd-method %s: %s" % (args.kd_method, exc.args[0] if exc.args else exc)) from exc
    return method.to(device)


def build_datasets(args: argparse.Namespace):
    root = args.data or get_dataset_info(args.dataset).default_root
    if not os.path.isdir(root):
        raise BuildError("dataset root %s does not exist; pass --data DIR (see data/README.md, or make "
                         "synthetic data with python -m datasets.synthetic)" % root)
    try:
        train = build_dataset(args.dataset, root, split=args.train_split, mode="train",
                              crop_size=tuple(args.crop_size), ignore_index=args.ignore_index,
                              on_bad_sample=args.on_bad_sample)
        val = None if args.skip_val else build_dataset(args.dataset, root, split=args.val_split, mode="val",
                                                       ignore_index=args.ignore_index)
    except DatasetError as exc:
        raise BuildError(str(exc)) from exc
    return train, val


def build_loaders(args: argparse.Namespace, dist_info: DistInfo, start_iteration: int) -> Tuple[DataLoader, Optional[DataLoader]]:
    train_set, val_set = build_datasets(args)
    per_rank = args.batch_size // dist_info.world_size
    sampler = IterationSampler(len(train_set), args.batch_size, args.max_iterations, seed=args.seed,
                               rank=dist_info.rank, world_size=dist_info.world_size,
                               start_iteration=start_iteration)
    # The loader's worker seeds come from its own generator, so the global RNG (dropout, method
    # draws) follows the same sequence in a fresh and in a resumed run.
    loader_gen = torch.Generator().manual_seed(args.seed)
    pin = dist_info.device.type == "cuda"
    train_loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, num_workers=args.workers,
                              pin_memory=pin, drop_last=False, generator=loader_gen, collate_fn=collate,
                              persistent_workers=False)
    val_loader = None
    if val_set is not None:
        mine = list(range(dist_info.rank, len(val_set), dist_info.world_size))
        val_loader = DataLoader(Subset(val_set, mine), batch_size=1, shuffle=False,
                                num_workers=min(args.workers, 2), pin_memory=pin, collate_fn=collate)
    return train_loader, val_loader
