"""What the synthetic benchmarks share: run train_kd.py / eval.py as subprocesses, resumably.

A run whose folder holds a resume file but no ``results.json`` continues (``--resume auto``); a
finished one is never rerun, so a killed benchmark picks up where it stopped.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADVERSARIAL_METHODS = ("skd", "ifvd", "cwd")


def recipe_flags(method: str, student_key: str, crop: Sequence[int], tokens: Optional[str] = None) -> List[str]:
    """The Cityscapes script's weights for ``method`` (``tools/make_train_scripts.method_flags``), adapted
    to the crop: SKD / IFVD / CWD's SAGAN discriminator needs logits of at least 64x64, so below that
    the adversarial term is off (as the CamVid scripts do); Tf-KD is its teacher-free ``reg`` variant;
    MasKD reads its stage-1 tokens from ``tokens``; Af-DCD's contrast pooling is chosen so that the
    pooled c4 map (crop / 8) is one 4x4 patch grid when the default pooling by 4 does not tile."""
    tools = os.path.join(ROOT, "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    from make_train_scripts import method_flags
    if method == "tf_kd":
        return ["--tf-kd-variant", "reg"]
    source = "citys" if method not in ADVERSARIAL_METHODS or min(crop) // 8 >= 64 else "camvid"
    flags = shlex.split(" ".join(method_flags(source, student_key, method)))
    if method == "maskd":
        flags[flags.index("--pretrained-mask") + 1] = tokens or ""
    if method == "af_dcd":
        feature = [-(-int(c) // 8) for c in crop]
        if any((f // 4) % 4 or f < 16 for f in feature) and feature[0] % 4 == 0 and feature[0] // 4 > 0 \
                and all(f % (feature[0] // 4) == 0 and (f // (feature[0] // 4)) % 4 == 0 for f in feature):
            flags += ["--pool-size", str(feature[0] // 4)]
    return flags


def _call(script: str, argv: List[str], log: str) -> float:
    """Run ``script argv`` from the repository root with its output in ``log``; return the wall seconds."""
    start = time.time()
    with open(log, "w") as handle:
        code = subprocess.call([sys.executable, os.path.join(ROOT, script)] + argv, cwd=ROOT,
                               env=dict(os.environ, PYTHONPATH=ROOT), stdout=handle, stderr=subprocess.STDOUT)
    if code:
        raise SystemExit("%s failed (exit %d); see %s" % (script, code, log))
    return time.time() - start


def train(argv: List[str], log: str) -> float:
    """One train_kd.py run (argv must name --save-dir); an interrupted one continues."""
    save = argv[argv.index("--save-dir") + 1]
    if os.path.isdir(save) and any(f.endswith("_resume.pth") for f in os.listdir(save)):
        argv = argv + ["--resume", "auto"]
    return _call("train_kd.py", argv, log)


def train_once(argv: List[str], save: str) -> float:
    """Train unless ``save`` already holds a finished run; the wall seconds of the run (stored)."""
    timing = os.path.join(save, "bench_time.json")      # written only once the run has finished
    if os.path.isfile(timing):
        return float(read_json(timing)["seconds"])
    seconds = train(argv + ["--save-dir", save], save + ".log")
    with open(timing, "w") as handle:
        json.dump({"seconds": seconds}, handle)
    return seconds


def evaluate(argv: List[str], log: str) -> float:
    """One eval.py run (argv must name --save-dir, where it writes results.json)."""
    return _call("eval.py", argv, log)


def read_json(path: str) -> Dict:
    with open(path) as handle:
        return json.load(handle)


def last_scores(save_dir: str) -> Dict[str, float]:
    """The last validation of a finished train_kd.py run (its ``results.json``)."""
    return read_json(os.path.join(save_dir, "results.json"))["last"]


def needs_teacher(method: str, flags: Sequence[str]) -> bool:
    """Whether ``--kd-method method`` with these flags builds a teacher (the method registry decides)."""
    from losses.registry import teachers_needed
    from train_kd import build_parser
    args, _ = build_parser().parse_known_args(["--kd-method", method] + list(flags))
    return teachers_needed(args) > 0
