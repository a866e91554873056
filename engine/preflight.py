"""Checks made at start-up, before any network is built, so a run never dies hours in on a bad
file, an unwritable folder or a shape a method cannot take.

- data: every file of every stream's list and of the validation list exists and is a complete
  image (``--check-data header``, the default: header and end marker, no decoding), or decodes with
  valid label values and matching sizes (``--check-data full``); ``--check-data off`` skips it.
  With ``--on-bad-sample skip`` damaged files are counted and logged instead of stopping the run.
- folders (``check_folders``, first of all: the log file goes there): ``--save-dir`` and
  ``--log-dir`` can be created and written; after the networks are
  built, the save folder has room for two checkpoints of this run (``check_free_space``).
- method: ``DistillMethod.check_setup(args)`` (e.g. Af-DCD's patch grid vs the crop's feature map).
- processes: the launcher's rendezvous variables are there when WORLD_SIZE > 1.
Every problem is a ``BuildError`` with one line naming the thing and what to do.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from typing import List, Optional, Sequence

from datasets import DatasetError
from datasets.base import SegmentationDataset, truncation
from engine.data import build_stream_dataset, build_val_dataset
from engine.specs import BuildError

LOGGER = logging.getLogger("segkd")
SHOW = 3


def check_folder(path: str, flag: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_test_", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise BuildError("%s %s cannot be written (%s); pick a writable folder"
                         % (flag, path, exc.strerror or exc)) from None


def check_folders(args: argparse.Namespace) -> None:
    check_folder(args.save_dir, "--save-dir")
    if args.log_dir != args.save_dir:
        check_folder(args.log_dir, "--log-dir")


def probe_file(path: str) -> Optional[str]:
    """A fast check of one image/label file: present, non-empty, a known complete format."""
    if not os.path.isfile(path):
        return "%s is missing" % path
    size = os.path.getsize(path)
    if size == 0:
        return "%s is empty" % path
    with open(path, "rb") as handle:
        head = handle.read(16)
        handle.seek(max(0, size - 64))
        tail = handle.read()
    problem = truncation(head, tail)
    return "%s is damaged (%s)" % (path, problem) if problem else None


def _check_dataset(dataset: SegmentationDataset, what: str, mode: str) -> List[str]:
    problems = []
    for sample in dataset.samples:
        if mode == "full":
            try:
                if dataset.with_labels:
                    dataset.format.load_pair(sample)
                else:
                    dataset.format.load_image_only(sample)
            except DatasetError as exc:
                problems.append(str(exc).splitlines()[0])
            continue
        for path in ([sample.image, sample.label] if dataset.with_labels else [sample.image]):
            problem = probe_file(path)
            if problem:
                problems.append(problem)
    return ["%s: %s" % (what, p) for p in problems]


def check_partition(args: argparse.Namespace, datasets) -> None:
    """A semi-supervised partition keeps labeled and unlabeled images apart."""
    if getattr(args, "allow_labeled_in_unlabeled", False):
        return
    labeled = {s.image for name, d in datasets if name == "labeled" for s in d.samples}
    for name, dataset in datasets:
        if name.startswith("unlabeled"):
            shared = sorted(labeled & {s.image for s in dataset.samples})
            if shared:
                raise BuildError("the labeled list (%s) and the unlabeled list (%s) share %d images (e.g. %s): a "
                                 "semi-supervised partition keeps them apart; fix the lists or pass "
                                 "--allow-labeled-in-unlabeled" % (args.train_list or args.train_split,
                                                                  args.unlabeled_list, len(shared), shared[0]))
            break


def check_data(args: argparse.Namespace, stream_names: Sequence[str]) -> None:
    mode = getattr(args, "check_data", "header")
    datasets = [(name, build_stream_dataset(args, name)) for name in stream_names]
    check_partition(args, datasets)
    if mode == "off":
        return
    problems, total = [], 0
    if not args.skip_val:
        datasets.append(("validation", build_val_dataset(args)))
    for what, dataset in datasets:
        total += len(dataset)
        problems += _check_dataset(dataset, what, mode)
    if not problems:
        return
    summary = "%d problem(s) in %d samples checked (--check-data %s), e.g. %s" % (
        len(problems), total, mode, "; ".join(problems[:SHOW]))
    if args.on_bad_sample == "skip":
        LOGGER.warning("data: %s; these samples will be skipped (--on-bad-sample skip)", summary)
        return
    raise BuildError("data: %s; fix or remove them (tools/check_dataset.py lists all), or pass "
                     "--on-bad-sample skip" % summary)


def check_processes() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT", "RANK") if v not in os.environ]
        if missing:
            raise BuildError("WORLD_SIZE > 1 but %s not set: launch with torchrun (or "
                             "python -m torch.distributed.launch), not plain python" % ", ".join(missing))


def check_before_build(args: argparse.Namespace, method_spec, stream_names: Sequence[str],
                       with_data: bool = True) -> None:
    check_processes()
    for cls in method_spec.classes:
        try:
            cls.check_setup(args)
        except ValueError as exc:
            raise BuildError("--kd-method %s: %s" % (cls.name, exc)) from None
    if with_data:
        check_data(args, stream_names)


def check_weight_file(path: str, flag: str) -> None:
    """Present, non-empty and a PyTorch file (zip archive, or a legacy pickle) - without loading it."""
    if not os.path.isfile(path):
        raise BuildError("%s %s does not exist; download it into pretrained_ckpt/ (README) or fix the path"
                         % (flag, path))
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):
        raise BuildError("%s %s is not a PyTorch weight file (%d bytes, starts with %r); download it again"
                         % (flag, path, os.path.getsize(path), head))


def preflight(args: argparse.Namespace) -> None:
    """Everything that can be checked without building a network (``--preflight-only``)."""
    from engine.specs import student_spec, teacher_specs
    spec = args.method_spec
    nets = ([student_spec(args)] if spec.trains_student else []) + teacher_specs(args, spec.teachers_needed(args))
    for net in nets:
        for flag, path in (("pretrained", net.checkpoint), ("pretrained-base", net.pretrained_base)):
            if path is not None:
                check_weight_file(path, "--%s-%s" % (net.role, flag))
        if net.role.startswith("teacher") and net.checkpoint is None and not args.allow_random_teacher:
            raise BuildError("--kd-method %s needs a trained teacher: pass --%s-pretrained FILE"
                             % (args.kd_method, net.role))
    check_folders(args)
    check_before_build(args, spec, spec.streams_needed(args))
    # A new run must not land in a folder that holds one (the trainer refuses it too).
    from engine.state import RunFiles
    try:
        RunFiles(args, trains_student=spec.trains_student).resume_path_to_load()
    except ValueError as exc:
        raise BuildError(str(exc)) from None


def check_free_space(save_dir: str, bytes_per_checkpoint: int) -> None:
    """Room for two checkpoints (the new file is written next to the old one before the rename)."""
    free = shutil.disk_usage(save_dir).free
    need = 2 * bytes_per_checkpoint
    if free < need:
        raise BuildError("--save-dir %s has %.1f MB free, a checkpoint of this run needs about %.1f MB and "
                         "two must fit (the new one is written before the old one is replaced); free space "
                         "or pick another folder" % (save_dir, free / 2 ** 20, need / 2 ** 20))
