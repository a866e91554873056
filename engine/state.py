"""Where a run's files go, and how its full state is saved and restored.

Files in ``--save-dir`` (CIRKD names, so the official code and ``eval.py`` read them):
``kd_<model>_<backbone>_<dataset>.pth`` (latest student weights; ``<model>_<backbone>_<dataset>.pth``
for ``--kd-method none``, as CIRKD's ``train_baseline.py``), ``..._best_model.pth`` (best on val),
``..._resume.pth`` (everything to continue the same curve). Methods that train no student
(MasKD stage 1) export their own state through ``method.export_state(path)``.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch.distributed as dist

from utils.checkpoint import (atomic_save, best_filename, find_resume, load_resume, non_finite_entries,
                              resume_filename, rng_state, student_filename)
from utils.distributed import is_dist

IDENTITY_KEYS = ("kd_method", "student_model", "student_backbone", "dataset", "num_classes", "incremental", "step")
SCHEDULE_KEYS = ("batch_size", "max_iterations")   # a change would silently bend the curve


class RunFiles:
    def __init__(self, args, trains_student: bool = True) -> None:
        self.args = args
        self.save_dir = args.save_dir
        prefix = "kd" if args.kd_method != "none" else ""
        if trains_student:
            model, backbone = args.student_model, args.student_backbone
        else:
            model, backbone = args.teacher_model, args.teacher_backbone
            prefix = args.kd_method

        def path(filename_of) -> str:
            return os.path.join(self.save_dir, filename_of(model, backbone, args.dataset, prefix).lstrip("_"))

        self.student = path(student_filename)
        self.best = path(best_filename)
        self.resume = path(resume_filename)
        self.last_saved: Optional[str] = None
        self.improved = False

    def resume_path_to_load(self) -> Optional[str]:
        resume = self.args.resume
        if resume in (None, "", "None"):
            if os.path.isfile(self.resume):
                raise ValueError("%s already holds a run; continue it with --resume auto, or pick another "
                                 "--save-dir (nothing was overwritten)" % self.resume)
            return None
        if resume == "auto":
            return find_resume(self.save_dir, os.path.basename(self.resume))
        if not os.path.isfile(resume):
            raise ValueError("--resume %s does not exist; pass a *_resume.pth file or 'auto'" % resume)
        return resume


def _gather_rng():
    state = rng_state()
    if not is_dist():
        return [state]
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


class NonFiniteState(ValueError):
    """The weights (or optimizer state) hold NaN/Inf: nothing is written."""


def save_run_state(files: RunFiles, args, iteration: int, student, method, optimizer, scaler,
                   best_score: float, is_main: bool) -> None:
    # `student` is the bare model (never the DDP wrapper), so its keys have no "module." prefix.
    weights = student.state_dict() if student is not None else {}
    # Every process checks (the weights are the same everywhere), so all stop together.
    bad = (non_finite_entries(weights, "student") + non_finite_entries(method.state_dict(), "method")
           + non_finite_entries(optimizer.state_dict().get("state", {}), "optimizer"))
    if bad:
        raise NonFiniteState("non-finite values after iteration %d in %d tensor(s) (e.g. %s); nothing was saved, "
                             "last good checkpoint: %s" % (iteration, len(bad), bad[0], files.last_saved or "none yet"))
    rngs = _gather_rng()  # collective: every process takes part
    if not is_main:
        return
    if student is not None:
        atomic_save(weights, files.student)
        if files.improved:
            atomic_save(weights, files.best)
            files.improved = False
    else:
        method.export_state(files.student)
    state = {
        "iteration": iteration,
        "student": weights,
        "method": method.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "best_score": best_score,   # by the evaluator's best_key (mIoU by default)
        "rng": rngs,
        "identity": {k: getattr(args, k, None) for k in IDENTITY_KEYS},
        "args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, list, type(None)))},
    }
    atomic_save(state, files.resume)
    files.last_saved = files.resume


def load_resume_into(path: str, args, student, method, optimizer, scaler) -> Tuple[int, float, dict]:
    state = load_resume(path)
    saved = dict(state.get("args", {}))
    saved.update(state.get("identity", {}))
    keys = IDENTITY_KEYS + SCHEDULE_KEYS
    diff = {k: (saved.get(k), getattr(args, k, None)) for k in keys if k in saved and saved[k] != getattr(args, k, None)}
    if diff and not getattr(args, "resume_override", False):
        raise ValueError("resume file %s was written with other settings (%s); use the same flags, another "
                         "--save-dir, or --resume-override to continue anyway"
                         % (path, ", ".join("--%s: file %s vs now %s" % (k.replace("_", "-"), a, b)
                                            for k, (a, b) in diff.items())))
    if student is not None:
        try:
            student.load_state_dict(state["student"])
        except RuntimeError as exc:
            raise ValueError("resume file %s does not fit the student: %s" % (path, str(exc).splitlines()[0])) from exc
    try:
        method.load_state_dict(state["method"])
    except RuntimeError as exc:
        raise ValueError("resume file %s does not fit --kd-method %s: %s"
                         % (path, args.kd_method, str(exc).splitlines()[0])) from exc
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    rngs = state.get("rng") or []
    rank = dist.get_rank() if is_dist() else 0
    rng = rngs[rank] if rank < len(rngs) else None
    return int(state["iteration"]), float(state.get("best_score", state.get("best_miou", 0.0))), rng
