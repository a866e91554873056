"""A measured class-incremental result on synthetic data: DKD vs fine-tuning without distillation.

    python benchmarks/bench_dkd_synthetic.py                 # ~15 min on 2 CPU cores
    python benchmarks/bench_dkd_synthetic.py --seeds 0 --base-iterations 60 --step-iterations 20   # a quick look

A 2-step overlap task on synthetic VOC-format data (``voc:14-6``: step 0 learns the classes 1-14,
of which the synthetic scenes show bicycle, bus, car and motorbike; step 1 adds 15-20: person and
train), DeepLabV3-ResNet18 of DKD's design (``dkd_deeplabv3``), DKD's pipeline and test protocol,
all through the real CLI. Step 0 is trained once; step 1 then runs for each seed twice from the
same step-0 weights: DKD (mBCE + AC + 5 KD + 5 DKD+ + 5 DKD-) and fine-tuning (mBCE + AC only,
the distillation weights 0), same iterations and lr. Printed: mIoU old (background + step 0's
classes) / new / all and hIoU per seed and the mean; written to ``<out>/results.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from benchmarks.runs import last_scores, train  # noqa: E402
TASK = "voc:14-6:overlap"
WEIGHTS = "kd_dkd_deeplabv3_resnet18_voc.pth"



def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="work_dirs/bench_dkd_synthetic")
    p.add_argument("--num-train", type=int, default=48)
    p.add_argument("--num-val", type=int, default=16)
    p.add_argument("--size", type=int, nargs=2, default=(96, 96), metavar=("H", "W"))
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--base-iterations", type=int, default=300)
    p.add_argument("--step-iterations", type=int, default=60)
    p.add_argument("--lr", type=float, nargs=2, default=(0.01, 0.001), metavar=("STEP0", "STEP1"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    from datasets.synthetic import generate
    data = generate("voc", os.path.join(args.out, "data"), args.num_train, args.num_val, args.size, seed=0,
                    workers=args.workers)["root"]
    common = ["--kd-method", "dkd", "--incremental", TASK, "--dataset", "voc", "--data", data, "--pipeline", "dkd",
              "--student-model", "dkd_deeplabv3", "--student-backbone", "resnet18", "--crop-size", str(args.crop),
              str(args.crop), "--batch-size", str(args.batch_size), "--workers", str(args.workers), "--no-progress",
              "--log-iter", "20", "--nesterov", "--head-lr-mult", "10", "--check-data", "off"]
    base = os.path.join(args.out, "step_0")
    if not os.path.isfile(os.path.join(base, "results.json")):
        train(common + ["--step", "0", "--max-iterations", str(args.base_iterations), "--lr", str(args.lr[0]),
                      "--val-per-iters", str(args.base_iterations), "--seed", "100", "--save-dir", base],
            os.path.join(args.out, "step_0.log"))
    print("step 0: mIoU_all %.2f" % (100 * last_scores(base)["mIoU_all"]), flush=True)
    teacher = os.path.join(base, WEIGHTS)
    step1 = common + ["--step", "1", "--max-iterations", str(args.step_iterations), "--lr", str(args.lr[1]),
                      "--val-per-iters", str(args.step_iterations), "--teacher-model", "dkd_deeplabv3",
                      "--teacher-backbone", "resnet18", "--teacher-pretrained", teacher, "--student-pretrained", teacher,
                      "--freeze-bn", "--disable-dropout", "--weight-decay-only", "cls.2.*"]
    no_kd = ["--dkd-w-kd", "0", "--dkd-w-dkd-pos", "0", "--dkd-w-dkd-neg", "0"]
    table: Dict[str, Dict[str, List[float]]] = {"fine-tuning": {}, "DKD": {}}
    for seed in args.seeds:
        for name, extra in (("fine-tuning", no_kd), ("DKD", [])):
            save = os.path.join(args.out, "%s_seed%d" % ("ft" if extra else "dkd", seed))
            if not os.path.isfile(os.path.join(save, "results.json")):
                train(step1 + extra + ["--seed", str(seed), "--save-dir", save], save + ".log")
            figures = last_scores(save)
            for key in ("mIoU_old", "mIoU_new", "mIoU_all", "hIoU"):
                table[name].setdefault(key, []).append(100 * figures[key])
            print("seed %d %-11s old %.2f new %.2f all %.2f hIoU %.2f" % ((seed, name) + tuple(
                table[name][k][-1] for k in ("mIoU_old", "mIoU_new", "mIoU_all", "hIoU"))), flush=True)
    print("\n| step 1 of voc:14-6 (%d seeds) | mIoU old | mIoU new | mIoU all | hIoU |" % len(args.seeds))
    print("|---|---|---|---|---|")
    for name, figures in table.items():
        print("| %s | %s |" % (name, " | ".join("%.2f +- %.2f" % (statistics.mean(v), statistics.pstdev(v))
                                             for v in (figures[k] for k in ("mIoU_old", "mIoU_new", "mIoU_all", "hIoU")))))
    summary = {"args": vars(args), "table": table, "seconds": time.time() - start}
    with open(os.path.join(args.out, "results.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    print("\n%.0f s; written to %s" % (summary["seconds"], os.path.join(args.out, "results.json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
