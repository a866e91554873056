"""Checkpoint files: atomic writes, the CIRKD student files, and the full resume file.

- ``kd_<model>_<backbone>_<dataset>.pth`` and ``..._best_model.pth``: the student's plain
  ``state_dict()`` (no ``module.`` prefix), loadable by ``eval.py`` and by the official code.
- ``kd_<model>_<backbone>_<dataset>_resume.pth``: everything needed to continue the same curve
  (student, method state such as memory queues, optimizer, grad scaler, iteration, RNG states,
  best mIoU, the run's identity). Loaded with ``weights_only=True``.
Every write goes to a temporary file in the same folder and is renamed over the target, so a
crash mid-write never destroys the previous file.
"""
from __future__ import annotations

import os
import random
import tempfile
from typing import Any, Dict, Optional

import torch


def atomic_save(obj: Any, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".pth", dir=folder)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
