"""A measured semi-supervised result on synthetic data: MGD vs the same student on the labeled part alone.

    python benchmarks/bench_mgd_synthetic.py                  # defaults below, ~51 min on 2 CPU cores
    python benchmarks/bench_mgd_synthetic.py --iterations 50 --seeds 0   # a quick look

What it runs, all through the real CLI (train_kd.py) on one synthetic Cityscapes-format set with a
1/R labeled partition (``datasets.synthetic --semi-split R``), CPS pipeline, slide evaluation:
  1. two CPS teacher pairs (``--kd-method cps``) on the partition: T_D DeepLabV3+ ResNet-18 and
     T_W DeepLabV3+ MobileNetV2 (scaled down from ResNet-101 / WRN-50-2 so the run fits a CPU);
  2. for each seed: the student (DeepLabV3+ ResNet-18) on the labeled images alone (``none``), and
     the same student with MGD from both teachers, same iterations, batch and learning rate;
then prints validation mIoU per seed and the mean, and writes ``<out>/table.md`` and ``<out>/results.json``
(scores, teacher scores and the wall seconds of every run). A killed benchmark resumes where it stopped.
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
from benchmarks.runs import last_scores, train_once  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="work_dirs/bench_mgd_synthetic")
    p.add_argument("--num-train", type=int, default=64)
    p.add_argument("--num-val", type=int, default=16)
    p.add_argument("--size", type=int, nargs=2, default=(96, 192), metavar=("H", "W"))
    p.add_argument("--ratio", type=int, default=8, help="1/R of the training images are labeled")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--teacher-iterations", type=int, default=900,
                   help="CPS teachers: at 300 they were weaker than the labeled-only student and MGD lost")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    from datasets.synthetic import generate
    data = generate("cityscapes", os.path.join(args.out, "data"), args.num_train, args.num_val, args.size,
                    seed=0, workers=args.workers, semi_split=args.ratio)
    common = ["--dataset", "citys", "--data", data["root"], "--pipeline", "cps", "--crop-size", str(args.crop),
              str(args.crop), "--batch-size", str(args.batch_size), "--workers", str(args.workers), "--no-progress",
              "--log-iter", "25", "--lr", str(args.lr), "--weight-decay", "1e-4", "--no-decay-norm-bias",
              "--val-mode", "slide", "--val-crop-size", str(args.crop), str(args.crop), "--val-stride",
              str(-(-args.crop * 2 // 3)), str(-(-args.crop * 2 // 3)), "--val-miou", "present",
              "--train-list", data["labeled_list"], "--check-data", "off"]
    unlabeled = ["--unlabeled-list", data["unlabeled_list"]]
    teachers: Dict[str, Dict] = {}
    for role, backbone in (("deep", "resnet18"), ("wide", "mobilenetv2")):
        save = os.path.join(args.out, "cps_%s_%dit" % (backbone, args.teacher_iterations))
        seconds = train_once(common + unlabeled + [
            "--kd-method", "cps", "--student-model", "deeplabv3plus_cps", "--student-backbone", backbone,
            "--max-iterations", str(args.teacher_iterations), "--seed", "100",
            "--val-per-iters", str(args.teacher_iterations), "--save-per-iters", "100"], save)
        teachers[role] = {"backbone": backbone, "miou": 100 * last_scores(save)["mIoU"], "seconds": seconds,
                          "weights": os.path.join(save, "kd_deeplabv3plus_cps_%s_citys.pth" % backbone)}
        print("teacher %s (%s, CPS): mIoU %.2f  (%.0f s)" % (role, backbone, teachers[role]["miou"], seconds),
              flush=True)
    student = ["--student-model", "deeplabv3plus_cps", "--student-backbone", "resnet18",
               "--max-iterations", str(args.iterations), "--val-per-iters", str(args.iterations)]
    table: Dict[str, List[float]] = {"labeled only": [], "MGD": []}
    run_seconds: Dict[str, List[float]] = {"labeled only": [], "MGD": []}
    mgd = ["--kd-method", "mgd", "--mgd-sem-images-per-gpu", str(args.batch_size)] + unlabeled
    for flag, role in (("--teacher", "deep"), ("--teacher2", "wide")):
        mgd += [flag + "-model", "deeplabv3plus_cps", flag + "-backbone", teachers[role]["backbone"],
                flag + "-pretrained", teachers[role]["weights"]]
    for seed in args.seeds:
        for name, extra in (("labeled only", ["--kd-method", "none"]), ("MGD", mgd)):
            tag = "%s_seed%d" % ("sup" if name == "labeled only" else "mgd", seed)
            save = os.path.join(args.out, tag)
            seconds = train_once(common + student + extra + ["--seed", str(seed)], save)
            table[name].append(100 * last_scores(save)["mIoU"])
            run_seconds[name].append(seconds)
            print("seed %d %-13s mIoU %.2f  (%.0f s)" % (seed, name, table[name][-1], seconds), flush=True)
    lines = ["| student (DeepLabV3+ R18, 1/%d labeled of %d) | %s | mean |" % (
        args.ratio, args.num_train, " | ".join("seed %d" % s for s in args.seeds)),
        "|---|%s---|" % ("---|" * len(args.seeds))]
    lines += ["| %s | %s | %.2f |" % (name, " | ".join("%.2f" % v for v in values), statistics.mean(values))
              for name, values in table.items()]
    lines += ["", "Teachers (CPS, %d iterations): %s." % (args.teacher_iterations, ", ".join(
        "T_%s %s %.2f" % (role[0].upper(), row["backbone"], row["miou"]) for role, row in teachers.items()))]
    summary = {"args": vars(args), "teachers": teachers, "miou": table,
               "mean": {k: statistics.mean(v) for k, v in table.items()}, "run_seconds": run_seconds,
               "seconds_all_runs": sum(row["seconds"] for row in teachers.values())
               + sum(sum(v) for v in run_seconds.values())}
    with open(os.path.join(args.out, "table.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    print("\n" + "\n".join(lines))
    print("\n%.0f s of training in all (this call %.0f s); written %s, %s" % (
        summary["seconds_all_runs"], time.time() - start,
        *(os.path.join(args.out, f) for f in ("table.md", "results.json"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
