"""Does distillation help, and by how much? Teacher once, then the baseline and each method over N seeds.

    python benchmarks/kd_benefit.py --profile cpu                 # about an hour on 2 CPU cores
    python benchmarks/kd_benefit.py --profile gpu                 # recipe shapes, all methods, one GPU
    python benchmarks/kd_benefit.py --profile cpu --methods none kd --seeds 0   # a subset

Everything goes through the real CLI on one synthetic Cityscapes-format set (``datasets.synthetic``):
  1. the teacher is trained with ``--kd-method none`` (``--teacher-iterations``) and scored by eval.py;
  2. for each seed and each method (``none`` = the baseline): the student is trained for
     ``--student-iterations`` with the method's recipe weights (the Cityscapes scripts' values,
     ``tools/make_train_scripts.method_flags``), the same lr, batch, crop and seed for every method,
     and scored by eval.py (whole image, single scale, mIoU over all 19 classes);
  3. writes ``<out>/table.md``, ``<out>/results.json`` and ``<out>/chart.png`` (mean +- std per
     method, the teacher as a dashed line).
Each run keeps its folder (``<out>/<method>_seed<k>/``, eval in ``eval/``); a killed benchmark
continues where it stopped (finished runs are read back, an interrupted one resumes).

Where a setting departs from the recipe because of the small crops it is said in the table's notes:
the SAGAN discriminator of SKD / IFVD / CWD needs logits of at least 64x64, so below a 512 crop the
adversarial term is off (as the CamVid scripts do). MasKD first trains its mask tokens on the teacher
(``maskd_tokens``, a quarter of the teacher's iterations).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from glob import glob
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from benchmarks.bar_chart import bar_chart  # noqa: E402
from benchmarks.runs import ADVERSARIAL_METHODS, evaluate, needs_teacher, read_json, recipe_flags, train_once  # noqa: E402

ALL_METHODS = ["none", "kd", "skd", "ifvd", "cwd", "cirkd", "maskd", "af_dcd", "bpkd", "tf_kd", "sad", "tf_fd"]
PROFILES: Dict[str, Dict] = {
    # 2 CPU cores: a DeepLabV3-ResNet18 teacher (a ResNet-101 cannot be trained here in time) trained
    # 3x longer than the DeepLabV3-MobileNetV2 students; small images, 96x96 crops.
    "cpu": dict(num_train=64, num_val=16, size=(128, 256), crop=(96, 96), batch_size=8, lr=0.02,
                teacher=("deeplabv3", "resnet18"), teacher_iterations=300,
                student=("deeplab_mobile", "mobilenetv2"), student_key="deeplabv3_mbv2", student_iterations=100,
                methods=["none", "kd", "cwd", "cirkd", "af_dcd", "bpkd", "tf_fd"], seeds=[0, 1, 2]),
    # One GPU: the recipes' pair and shapes (DeepLabV3-ResNet101 -> ResNet18, 512x1024 crops, batch 8).
    "gpu": dict(num_train=600, num_val=100, size=(512, 1024), crop=(512, 1024), batch_size=8, lr=0.02,
                teacher=("deeplabv3", "resnet101"), teacher_iterations=8000,
                student=("deeplabv3", "resnet18"), student_key="deeplabv3_r18", student_iterations=4000,
                methods=ALL_METHODS, seeds=[0, 1, 2]),
    # The test's shrunk mode: files and columns only.
    "smoke": dict(num_train=4, num_val=2, size=(64, 128), crop=(64, 64), batch_size=2, lr=0.01,
                  teacher=("deeplabv3", "resnet18"), teacher_iterations=2,
                  student=("deeplab_mobile", "mobilenetv2"), student_key="deeplabv3_mbv2", student_iterations=2,
                  methods=["none", "kd"], seeds=[0]),
}
def checkpoint_in(save_dir: str) -> str:
    """The final weights of a run (not the best on val: the scores are on that same val set)."""
    found = sorted(f for f in glob(os.path.join(save_dir, "*.pth"))
                   if not f.endswith(("_best_model.pth", "_resume.pth")))
    if not found:
        raise SystemExit("no final weights (*.pth) in %s; see the run's log" % save_dir)
    return found[0]


def evaluate_once(model: str, backbone: str, data: str, save: str, workers: int) -> float:
    out = os.path.join(save, "eval")
    if not os.path.isfile(os.path.join(out, "results.json")):
        evaluate(["--model", model, "--backbone", backbone, "--dataset", "citys", "--data", data, "--no-progress",
                  "--workers", str(workers), "--pretrained", checkpoint_in(save), "--save-dir", out],
                 os.path.join(save, "eval.log"))
    return 100 * float(read_json(os.path.join(out, "results.json"))["mIoU"])


def parse(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    p.add_argument("--out", default=None, help="default work_dirs/kd_benefit_<profile>")
    p.add_argument("--methods", nargs="+", choices=ALL_METHODS, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--teacher-iterations", type=int, default=None)
    p.add_argument("--student-iterations", type=int, default=None)
    p.add_argument("--num-train", type=int, default=None)
    p.add_argument("--num-val", type=int, default=None)
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--crop", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    for key, value in PROFILES[args.profile].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.out = args.out or os.path.join("work_dirs", "kd_benefit_%s" % args.profile)
    if "none" not in args.methods:
        args.methods = ["none"] + list(args.methods)     # the gain is measured against it
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    data = os.path.join(args.out, "data")
    if not os.path.isdir(os.path.join(data, "leftImg8bit")):
        from datasets.synthetic import generate
        generate("cityscapes", data, args.num_train, args.num_val, args.size, seed=0, workers=args.workers)
    common = ["--dataset", "citys", "--data", data, "--crop-size", str(args.crop[0]), str(args.crop[1]),
              "--batch-size", str(args.batch_size), "--workers", str(args.workers), "--no-progress",
              "--log-iter", "25", "--lr", str(args.lr), "--weight-decay", "1e-4"]
    teacher_model, teacher_backbone = args.teacher
    student_model, student_backbone = args.student

    teacher_dir = os.path.join(args.out, "teacher")
    teacher_seconds = train_once(common + [
        "--kd-method", "none", "--student-model", teacher_model, "--student-backbone", teacher_backbone,
        "--max-iterations", str(args.teacher_iterations), "--val-per-iters", str(args.teacher_iterations),
        "--seed", "100"], teacher_dir)
    teacher_miou = evaluate_once(teacher_model, teacher_backbone, data, teacher_dir, args.workers)
    teacher_file = checkpoint_in(teacher_dir)
    print("teacher %s/%s (%d it): mIoU %.2f" % (teacher_model, teacher_backbone, args.teacher_iterations,
                                                teacher_miou), flush=True)
    teacher_flags = ["--teacher-model", teacher_model, "--teacher-backbone", teacher_backbone,
                     "--teacher-pretrained", teacher_file]
    tokens = None
    if "maskd" in args.methods:
        tokens_dir = os.path.join(args.out, "maskd_tokens")
        steps = max(1, args.teacher_iterations // 4)
        train_once(common + teacher_flags + ["--kd-method", "maskd_tokens", "--max-iterations", str(steps),
                                             "--skip-val", "--lr", "0.1", "--weight-decay", "1e-3"], tokens_dir)
        tokens = sorted(glob(os.path.join(tokens_dir, "maskd_tokens_*.pth")))[0]

    rows: Dict[str, Dict[str, List[float]]] = {}
    for seed in args.seeds:
        for method in args.methods:
            flags = recipe_flags(method, args.student_key, args.crop, tokens)
            save = os.path.join(args.out, "%s_seed%d" % (method, seed))
            seconds = train_once(common + ["--kd-method", method, "--student-model", student_model,
                                           "--student-backbone", student_backbone,
                                           "--max-iterations", str(args.student_iterations),
                                           "--val-per-iters", str(args.student_iterations), "--seed", str(seed)]
                                 + (teacher_flags if needs_teacher(method, flags) else []) + flags, save)
            miou = evaluate_once(student_model, student_backbone, data, save, args.workers)
            row = rows.setdefault(method, {"miou": [], "seconds": []})
            row["miou"].append(miou)
            row["seconds"].append(seconds)
            print("seed %d %-7s mIoU %.2f  (%.0f s)" % (seed, method, miou, seconds), flush=True)

    baseline = statistics.mean(rows["none"]["miou"])
    summary = {"profile": args.profile, "args": {k: v for k, v in vars(args).items()},
               "teacher": {"model": "%s/%s" % args.teacher, "iterations": args.teacher_iterations,
                           "miou": teacher_miou, "seconds": teacher_seconds},
               "student": "%s/%s" % args.student, "methods": {}, "seconds": None}
    lines = ["| method | mIoU (mean +- std) | gain over baseline | per seed | train s/run |", "|---|---|---|---|---|",
             "| teacher %s/%s (%d it) | %.2f | | | %.0f |" % (teacher_model, teacher_backbone,
                                                            args.teacher_iterations, teacher_miou, teacher_seconds)]
    for method, row in rows.items():
        mean, std = statistics.mean(row["miou"]), statistics.pstdev(row["miou"])
        summary["methods"][method] = {"miou": row["miou"], "mean": mean, "std": std, "gain": mean - baseline,
                                      "seconds": row["seconds"]}
        lines.append("| %s | %.2f +- %.2f | %s | %s | %.0f |" % (
            "none (baseline)" if method == "none" else method, mean, std,
            "" if method == "none" else "%+.2f" % (mean - baseline), " / ".join("%.2f" % v for v in row["miou"]),
            statistics.mean(row["seconds"])))
    notes = ["student %s/%s, %d iterations, batch %d, crop %dx%d, lr %g, seeds %s; synthetic Cityscapes %d train / %d "
             "val images %dx%d; eval.py whole image, single scale, mIoU over all 19 classes (%%)."
             % (student_model, student_backbone, args.student_iterations, args.batch_size, args.crop[0], args.crop[1],
                args.lr, " ".join(map(str, args.seeds)), args.num_train, args.num_val, args.size[0], args.size[1])]
    if min(args.crop) // 8 < 64 and any(m in ADVERSARIAL_METHODS for m in args.methods):
        notes.append("SKD / IFVD / CWD: adversarial term off (logits under 64x64).")
    if "af_dcd" in args.methods:
        flags = recipe_flags("af_dcd", args.student_key, args.crop)
        if "--pool-size" in flags:
            notes.append("Af-DCD: --pool-size %s, so the pooled c4 map is one 4x4 patch grid."
                         % flags[flags.index("--pool-size") + 1])
    summary["seconds"] = time.time() - start
    table = "\n".join(lines + [""] + notes) + "\n"
    with open(os.path.join(args.out, "table.md"), "w") as handle:
        handle.write(table)
    with open(os.path.join(args.out, "results.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    names = list(rows)
    bar_chart(os.path.join(args.out, "chart.png"), names,
              [summary["methods"][m]["mean"] for m in names], [summary["methods"][m]["std"] for m in names],
              title="%s -> %s, %d seed(s), synthetic Cityscapes" % ("%s/%s" % args.teacher, "%s/%s" % args.student,
                                                                   len(args.seeds)),
              reference=teacher_miou, reference_name="teacher", baseline="none")
    print("\n" + table)
    print("%.0f s; written %s, %s, %s" % (summary["seconds"], *(os.path.join(args.out, f) for f in
                                                                 ("table.md", "results.json", "chart.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
