"""Named batch streams and the validation loader.

Every stream a method declares gets its own dataset, its own :class:`IterationSampler` (same seed,
its own salt) and its own DataLoader, so each stream is rank- and resume-exact on its own:
- ``labeled``: ``--dataset`` / ``--data`` with ``--train-split`` or ``--train-list``;
- ``unlabeled`` (and ``unlabeled2``, ... for methods that need several independent draws):
  ``--unlabeled-list``, read without labels (all-ignore labels), batch ``--unlabeled-batch-size``
  (default: ``--batch-size``).
One step gets ``{name: StreamBatch}`` with the same iteration index from every stream.
Every dataset runs ``--pipeline`` (``datasets/pipelines.py``; ``data_pipeline(args)``).
"""
from __future__ import annotations

import argparse
import os
from typing import Dict, Iterator, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Subset

from datasets import DatasetError, IterationSampler, Pipeline, build_dataset, collate, get_dataset_info, pipeline_of
from engine.specs import BuildError
from losses import StreamBatch
from utils.distributed import DistInfo


def dataset_root(args: argparse.Namespace) -> str:
    root = args.data or get_dataset_info(args.dataset).default_root
    if not os.path.isdir(root):
        raise BuildError("dataset root %s does not exist; pass --data DIR (see data/README.md, or make "
                         "synthetic data with python -m datasets.synthetic)" % root)
    return root


def data_pipeline(args: argparse.Namespace) -> Pipeline:
    return pipeline_of(args)


def _pipeline_kwargs(args: argparse.Namespace) -> dict:
    return {"pipeline": getattr(args, "pipeline", "cirkd"), "img_scale": getattr(args, "img_scale", None)}


def incremental_kwargs(args: argparse.Namespace) -> dict:
    """Where a class-incremental run caches its per-step selections, and its exemplar memory."""
    memory = list(getattr(args, "memory_list", None) or [])     # set by DKD-M's prepare_run
    from datasets.incremental import split_cache_dir
    return {"cache_dir": split_cache_dir(args.save_dir),
            "memory": memory}


def stream_batch_size(args: argparse.Namespace, name: str) -> int:
    if name == "labeled":
        return args.batch_size
    return args.unlabeled_batch_size or args.batch_size


def build_stream_dataset(args: argparse.Namespace, name: str):
    root = dataset_root(args)
    try:
        if name == "labeled" and getattr(args, "incremental", None):
            from datasets.incremental import build_incremental_dataset
            return build_incremental_dataset(args.dataset, root, args.incremental, args.step, args.train_split, "train",
                                             crop_size=tuple(args.crop_size), list_file=args.train_list,
                                             on_bad_sample=args.on_bad_sample, **_pipeline_kwargs(args),
                                             **incremental_kwargs(args))
        if name == "labeled":
            return build_dataset(args.dataset, root, split=args.train_split, mode="train",
                                 crop_size=tuple(args.crop_size), ignore_index=args.ignore_index,
                                 list_file=args.train_list, on_bad_sample=args.on_bad_sample, **_pipeline_kwargs(args))
        if name.startswith("unlabeled"):
            if not args.unlabeled_list:
                raise BuildError("--kd-method %s trains on unlabeled images: pass --unlabeled-list FILE (a list "
                                 "of the dataset's format, e.g. a semi-supervised partition)" % args.kd_method)
            return build_dataset(args.dataset, root, split=args.train_split, mode="train",
                                 crop_size=tuple(args.crop_size), ignore_index=args.ignore_index,
                                 list_file=args.unlabeled_list, on_bad_sample=args.on_bad_sample,
                                 with_labels=False, **_pipeline_kwargs(args))
    except (DatasetError, ValueError) as exc:
        raise BuildError(str(exc)) from exc
    raise BuildError("unknown batch stream %r declared by --kd-method %s (streams: labeled, unlabeled*)"
                     % (name, args.kd_method))


class StreamLoader:
    """Iterates the streams together: yields ``{name: StreamBatch}`` per iteration."""

    def __init__(self, loaders: Dict[str, DataLoader]) -> None:
        self.loaders = loaders

    @property
    def dataset(self):
        return self.loaders["labeled"].dataset

    @property
    def skipped(self) -> int:
        return sum(getattr(loader.dataset, "skipped", 0) for loader in self.loaders.values())

    def __iter__(self) -> Iterator[Dict[str, StreamBatch]]:
        names = list(self.loaders)
        for batches in zip(*(self.loaders[n] for n in names)):
            yield {n: StreamBatch(b[0], b[1], list(b[2])) for n, b in zip(names, batches)}


def build_train_streams(args: argparse.Namespace, names: Sequence[str], dist_info: DistInfo,
                        start_iteration: int) -> StreamLoader:
    loaders: Dict[str, DataLoader] = {}
    pin = dist_info.device.type == "cuda"
    for salt, name in enumerate(names):
        dataset = build_stream_dataset(args, name)
        batch = stream_batch_size(args, name)
        if batch % dist_info.world_size:
            raise BuildError("stream %s: batch %d is not divisible by the %d processes" % (name, batch, dist_info.world_size))
        sampler = IterationSampler(len(dataset), batch, args.max_iterations, seed=args.seed, rank=dist_info.rank,
                                   world_size=dist_info.world_size, start_iteration=start_iteration, salt=salt)
        # The loader's worker seeds come from its own generator, so the global RNG (dropout, method
        # draws) follows the same sequence in a fresh and in a resumed run.
        loaders[name] = DataLoader(dataset, batch_size=batch // dist_info.world_size, sampler=sampler,
                                   num_workers=args.workers, pin_memory=pin, drop_last=False,
                                   generator=torch.Generator().manual_seed(args.seed + salt),
                                   collate_fn=collate, persistent_workers=False)
    return StreamLoader(loaders)


def build_val_dataset(args: argparse.Namespace):
    try:
        if getattr(args, "incremental", None):
            from datasets.incremental import build_incremental_dataset
            return build_incremental_dataset(args.dataset, dataset_root(args), args.incremental, args.step, args.val_split,
                                             "val", crop_size=tuple(args.crop_size), list_file=args.val_list,
                                             on_bad_sample=args.on_bad_sample, **_pipeline_kwargs(args),
                                             cache_dir=incremental_kwargs(args)["cache_dir"])
        return build_dataset(args.dataset, dataset_root(args), split=args.val_split, mode="val",
                             ignore_index=args.ignore_index, list_file=args.val_list,
                             on_bad_sample=args.on_bad_sample, **_pipeline_kwargs(args),
                             crop_size=tuple(args.crop_size))
    except (DatasetError, ValueError) as exc:
        raise BuildError(str(exc)) from exc


def build_val_loader(args: argparse.Namespace, dist_info: DistInfo) -> Optional[DataLoader]:
    if args.skip_val:
        return None
    val_set = build_val_dataset(args)
    mine = list(range(dist_info.rank, len(val_set), dist_info.world_size))
    return DataLoader(Subset(val_set, mine), batch_size=1, shuffle=False,
                      num_workers=min(args.workers, 2), pin_memory=dist_info.device.type == "cuda",
                      collate_fn=collate)
