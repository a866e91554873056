"""Checkpoint files: atomic writes, the CIRKD student files, and the full resume file.

- ``kd_<model>_<backbone>_<dataset>.pth`` and ``..._best_model.pth``: the student's plain
  ``state_dict()`` (no ``module.`` prefix), loadable by ``eval.py`` and by the official code.
- ``kd_<model>_<backbone>_<dataset>_resume.pth``: everything needed to continue the same curve
  (student, method state such as memory queues, optimizer, grad scaler, iteration, RNG states,
  best mIoU, the run's identity). Loaded with ``weights_only=True``.
Every write goes to a temporary file in the same folder (``.tmp_*.pth``), is flushed to disk
(fsync of the file, then of the folder after the rename) and renamed over the target, so a crash
or a full disk mid-write never destroys the previous file. A failed write raises
``CheckpointWriteError`` (one line) and leaves no temporary file; ``remove_stale_tmp`` clears the
ones a killed process left behind. ``non_finite_entries`` names NaN/Inf tensors in a (nested) state.
"""
from __future__ import annotations

import os
import random
import tempfile
from typing import Any, Dict, List, Optional

import torch

TMP_PREFIX = ".tmp_"


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the previous file at that path is intact."""


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return          # e.g. platforms without directory handles
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".pth", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise CheckpointWriteError("could not write %s (%s); the previous file there is intact - free space "
                                   "or fix the folder's permissions, then resume with --resume auto"
                                   % (path, reason)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_tmp(folder: str) -> List[str]:
    """Delete ``.tmp_*.pth`` files (half-written checkpoints of a killed process); return their names."""
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(TMP_PREFIX) and name.endswith(".pth"):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def non_finite_entries(state: Any, prefix: str = "") -> List[str]:
    """Names of floating-point tensors holding NaN or Inf anywhere in a nested dict/list state."""
    found: List[str] = []
    if torch.is_tensor(state):
        if state.is_floating_point() and state.numel() and not bool(torch.isfinite(state).all()):
            found.append(prefix or "<tensor>")
    elif isinstance(state, dict):
        for key, value in state.items():
            found += non_finite_entries(value, "%s.%s" % (prefix, key) if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for index, value in enumerate(state):
            found += non_finite_entries(value, "%s[%d]" % (prefix, index))
    return found


def student_filename(model: str, backbone: str, dataset: str, prefix: str = "kd") -> str:
    return "%s_%s_%s_%s.pth" % (prefix, model, backbone, dataset)


def best_filename(model: str, backbone: str, dataset: str, prefix: str = "kd") -> str:
    return "%s_%s_%s_%s_best_model.pth" % (prefix, model, backbone, dataset)


def resume_filename(model: str, backbone: str, dataset: str, prefix: str = "kd") -> str:
    return "%s_%s_%s_%s_resume.pth" % (prefix, model, backbone, dataset)


def rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(_flatten(random.getstate()))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_unflatten(state["python"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _flatten(py_state):
    version, internal, gauss = py_state
    return [version] + list(internal) + [gauss]


def _unflatten(flat):
    return (flat[0], tuple(flat[1:-1]), flat[-1])


def find_resume(save_dir: str, filename: str) -> Optional[str]:
    """``--resume auto``: this run's resume file in ``save_dir`` if one exists, else None."""
    path = os.path.join(save_dir, filename)
    return path if os.path.isfile(path) else None


def load_resume(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise FileNotFoundError("resume file %s does not exist; pass --resume auto or a path written by train_kd.py" % path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError("resume file %s cannot be read (%s); is it a train_kd.py resume file?"
                         % (path, str(exc).splitlines()[0])) from exc
    if not isinstance(state, dict) or "iteration" not in state or "student" not in state:
        raise ValueError("%s is not a train_kd.py resume file (no 'iteration'/'student'); pass the "
                         "*_resume.pth file, or use --student-pretrained for plain weights" % path)
    return state
