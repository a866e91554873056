"""Run every step of a class-incremental task in order (DKD / DKD-M), restarting at the first unfinished step.

    python tools/run_incremental.py --incremental voc:15-1:overlap --out work_dirs/dkd_voc_overlap_15-1 \\
        --iterations 17940 900 540 900 900 1020 --lr 1e-3 1e-4 --pos-weight 2 1 --nproc 4 -- <train_kd.py flags>

Step t trains in ``<out>/step_t``; from step 1 on, step t-1's final weights are the teacher and the
initialisation (``--teacher-pretrained`` / ``--student-pretrained``), BatchNorm is frozen, dropout
off, and weight decay only on the new head (DKD's recipe). A finished step leaves ``<out>/step_t/done``;
a step with a resume file continues with ``--resume auto``. ``--dry-run`` prints each step's command.
The train scripts in train_scripts/dkd/ call this with the official settings.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--incremental", required=True, help="DATASET:TASK:SETTING, e.g. voc:15-1:overlap")
    p.add_argument("--out", required=True, help="folder of the task; step t trains in <out>/step_t")
    p.add_argument("--iterations", type=int, nargs="+", required=True, help="iterations of each step (one per step)")
    p.add_argument("--lr", type=float, nargs=2, required=True, metavar=("STEP0", "LATER"))
    p.add_argument("--pos-weight", type=float, nargs=2, required=True, metavar=("STEP0", "LATER"))
    p.add_argument("--model", default="dkd_deeplabv3")
    p.add_argument("--backbone", default="resnet101")
    p.add_argument("--dataset", default=None, help="--dataset of train_kd.py (default: from --incremental)")
    p.add_argument("--nproc", type=int, default=1)
    p.add_argument("--launcher", choices=["torchrun", "python"], default="torchrun")
    p.add_argument("--from-step", type=int, default=None, help="start here even if earlier steps are not marked done")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="-- then flags for every step's train_kd.py")
    args = p.parse_args(argv)
    args.rest = [a for a in args.rest if a != "--"] if args.rest[:1] == ["--"] else args.rest
    return args


def weights_file(args: argparse.Namespace, step: int) -> str:
    dataset = args.dataset or {"voc": "voc", "ade": "ade20k", "ade20k": "ade20k"}[args.incremental.split(":")[0]]
    return os.path.join(args.out, "step_%d" % step, "kd_%s_%s_%s.pth" % (args.model, args.backbone, dataset))


def step_argv(args: argparse.Namespace, step: int) -> List[str]:
    """The train_kd.py arguments of one step."""
    dataset = args.dataset or {"voc": "voc", "ade": "ade20k", "ade20k": "ade20k"}[args.incremental.split(":")[0]]
    argv = ["--kd-method", "dkd", "--incremental", args.incremental, "--step", str(step), "--dataset", dataset,
            "--student-model", args.model, "--student-backbone", args.backbone,
            "--max-iterations", str(args.iterations[step]), "--lr", repr(args.lr[min(step, 1)]),
            "--dkd-pos-weight", repr(args.pos_weight[min(step, 1)]),
            "--save-dir", os.path.join(args.out, "step_%d" % step)] + list(args.rest)
    if step > 0:
        previous = weights_file(args, step - 1)
        argv += ["--teacher-model", args.model, "--teacher-backbone", args.backbone, "--teacher-pretrained", previous,
                 "--student-pretrained", previous, "--freeze-bn", "--disable-dropout",
                 "--weight-decay-only", "cls.%d.*" % (step + 1)]
    return argv


def main(argv: Optional[List[str]] = None) -> int:
    args = parse(argv)
    from datasets.incremental import IncrementalTaskError, parse_incremental, task_steps
    try:
        dataset, task, _ = parse_incremental(args.incremental)
        steps = len(task_steps(dataset, task))
    except IncrementalTaskError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    if len(args.iterations) != steps:
        print("error: --iterations needs %d values (one per step of %s), got %d" % (steps, task, len(args.iterations)),
              file=sys.stderr)
        return 2
    start = args.from_step if args.from_step is not None else 0
    for step in range(start, steps):
        folder = os.path.join(args.out, "step_%d" % step)
        if args.from_step is None and os.path.isfile(os.path.join(folder, "done")):
            print("step %d: done (%s)" % (step, folder))
            continue
        train = step_argv(args, step)
        if any(name.endswith("_resume.pth") for name in (os.listdir(folder) if os.path.isdir(folder) else [])):
            train += ["--resume", "auto"]
        launch = ([sys.executable] if args.launcher == "python" else
                  ["torchrun", "--nproc_per_node", str(args.nproc)])
        commands = [[sys.executable, os.path.join(ROOT, "train_kd.py")] + train + ["--preflight-only"],
                    launch + [os.path.join(ROOT, "train_kd.py")] + train]
        for command in commands:
            print("step %d: %s" % (step, " ".join(shlex.quote(c) for c in command)), flush=True)
            if not args.dry_run:
                code = subprocess.call(command, cwd=ROOT)
                if code:
                    print("error: step %d failed (exit %d); run the script again to continue from it" % (step, code),
                          file=sys.stderr)
                    return code
        if not args.dry_run:
            open(os.path.join(folder, "done"), "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
