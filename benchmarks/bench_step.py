"""One whole KD training iteration (student fwd+bwd, teacher fwd, loss, optimiser step) per setting.

    python benchmarks/bench_step.py --method af_dcd --device cuda                 # 512x1024, batch 2
    python benchmarks/bench_step.py --method none,kd,cwd,cirkd,af_dcd,bpkd --device cuda --markdown
    python benchmarks/bench_step.py --method af_dcd --device cpu --size quarter   # 128x256, a CPU look

The step is the training loop's own (``engine.trainer.Trainer.train_step``: networks, method, task loss,
optimiser and the method's hooks, built from ``train_kd.py`` flags exactly as a run builds them) on a
random batch of the recipe's per-GPU shape: Cityscapes, DeepLabV3-ResNet101 teacher (random weights)
-> DeepLabV3-ResNet18, batch 2, 512x1024 crops, the method's weights from the Cityscapes scripts.
For each precision setting (``--settings``: fp32, bf16 = ``--amp bf16``, cl = ``--channels-last``,
bf16+cl) it prints images/s and ms per step (median over ``--steps`` after ``--warmup``), peak memory
(CUDA max allocated; CPU peak RSS growth), the step's FLOPs (torch's FlopCounterMode, one extra step)
and the achieved TFLOP/s, with the share of the device's peak where the peak is known (``--peak-tflops``
overrides; fp32 steps count against the TF32 peak when TF32 matmuls are on).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

from benchmarks.loss_cost import SIZES, PeakMemory, _synchronize  # noqa: E402
from benchmarks.runs import needs_teacher, recipe_flags  # noqa: E402

SETTINGS = {"fp32": [], "bf16": ["--amp", "bf16"], "cl": ["--channels-last"], "bf16+cl": ["--amp", "bf16", "--channels-last"]}
# Dense peak TFLOP/s (vendor data sheets): (bf16, tf32, fp32).
PEAKS = {"H100": (989.0, 494.7, 66.9), "H200": (989.0, 494.7, 66.9), "A100": (312.0, 156.0, 19.5),
         "L40S": (362.0, 183.0, 91.6), "V100": (125.0, 15.7, 15.7)}


def device_peak(device: torch.device, setting: str) -> Optional[float]:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (bf16, tf32, fp32) in PEAKS.items():
        if key in name:
            if "bf16" in setting:
                return bf16
            return tf32 if torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32 else fp32
    return None


def make_data(root: str, crop: Sequence[int]) -> str:
    """A two-image synthetic Cityscapes set at the crop size: the Trainer wants real files to exist."""
    from datasets.synthetic import generate
    return str(generate("cityscapes", root, 2, 1, crop, seed=0, workers=1)["root"])


def train_argv(opts: argparse.Namespace, method: str, data: str, save: str, setting: str) -> List[str]:
    flags = recipe_flags(method, "deeplabv3_r18", opts.crop)
    teacher = ["--teacher-model", "deeplabv3", "--teacher-backbone", opts.teacher_backbone,
               "--allow-random-teacher"] if needs_teacher(method, flags) else []
    return (["--kd-method", method, "--student-model", "deeplabv3", "--student-backbone", opts.student_backbone,
             "--dataset", "citys", "--data", data, "--crop-size", str(opts.crop[0]), str(opts.crop[1]),
             "--batch-size", str(opts.batch), "--max-iterations", "1000", "--workers", "0", "--no-progress",
             "--skip-val", "--check-data", "off", "--device", opts.device, "--save-dir", save]
            + teacher + flags + SETTINGS[setting])


def measure(opts: argparse.Namespace, method: str, setting: str, data: str, workdir: str) -> Dict[str, object]:
    import losses
    from engine.trainer import Trainer
    from train_kd import parse_args
    save = os.path.join(workdir, "%s_%s" % (method, setting.replace("+", "_")))
    args = parse_args(train_argv(opts, method, data, save, setting))
    with contextlib.redirect_stdout(sys.stderr):    # the run's log lines stay out of the table
        trainer = Trainer(args)
    device = trainer.device
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(opts.batch, 3, opts.crop[0], opts.crop[1], generator=generator).to(device)
    labels = torch.randint(0, args.num_classes, (opts.batch, opts.crop[0], opts.crop[1]), generator=generator).to(device)
    batch = {"labeled": losses.StreamBatch(images, labels, ["random"] * opts.batch)}
    iteration = 0

    def step() -> None:
        nonlocal iteration
        trainer.train_step(batch, iteration)
        iteration += 1
        _synchronize(device)

    for _ in range(opts.warmup):
        step()
    memory = PeakMemory(device)
    memory.start()
    times = []
    for _ in range(opts.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak_mb = memory.growth_mb() if device.type == "cpu" else torch.cuda.max_memory_allocated(device) / 2 ** 20
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    seconds = statistics.median(times)
    flops = counter.get_total_flops()
    tflops = flops / seconds / 1e12
    peak = opts.peak_tflops or device_peak(device, setting)
    return {"method": method, "setting": setting, "images_per_s": opts.batch / seconds, "ms": 1000 * seconds,
            "peak_mb": peak_mb, "gflop": flops / 1e9, "tflops": tflops,
            "peak_share": (tflops / peak) if peak else None}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="af_dcd", help="comma-separated --kd-method names")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", choices=sorted(SIZES), default="full", help="full 512x1024, half, quarter 128x256")
    p.add_argument("--batch", type=int, default=2, help="per-GPU batch (the recipes: 2)")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=None,
                   help="default: all four on CUDA; fp32 and cl on CPU (CPU bf16 without AMX is emulated, minutes per step)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--teacher-backbone", default="resnet101")
    p.add_argument("--student-backbone", default="resnet18")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for the share column")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--markdown", action="store_true")
    opts = p.parse_args(argv)
    if opts.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible to torch; use --device cpu")
    if opts.steps < 1 or opts.warmup < 0 or opts.batch < 1:
        p.error("--steps and --batch must be >= 1, --warmup >= 0")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    opts.crop = SIZES[opts.size]
    opts.settings = opts.settings or (list(SETTINGS) if opts.device == "cuda" else ["fp32", "cl"])
    workdir = tempfile.mkdtemp(prefix="bench_step_")
    rows = []
    try:
        data = make_data(os.path.join(workdir, "data"), opts.crop)
        for method in [m.strip() for m in opts.method.split(",") if m.strip()]:
            for setting in opts.settings:
                row = measure(opts, method, setting, data, workdir)
                rows.append(row)
                print("%s %s: %.2f images/s" % (method, setting, row["images_per_s"]), file=sys.stderr, flush=True)
                if opts.device == "cuda":
                    torch.cuda.empty_cache()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    where = ("CUDA %s, torch %s" % (torch.cuda.get_device_name(), torch.__version__) if opts.device == "cuda"
             else "CPU, %d thread(s), torch %s" % (torch.get_num_threads(), torch.__version__))
    print("Training step: DeepLabV3-%s -> DeepLabV3-%s, batch %d, crop %dx%d, %s; median of %d step(s) after %d "
          "warm-up." % (opts.teacher_backbone, opts.student_backbone, opts.batch, opts.crop[0], opts.crop[1], where,
                        opts.steps, opts.warmup))
    header = ["method", "setting", "images/s", "ms/step", "peak MB", "GFLOP/step", "TFLOP/s", "share of peak"]
    table = [[r["method"], r["setting"], "%.2f" % r["images_per_s"], "%.0f" % r["ms"], "%.0f" % r["peak_mb"],
              "%.0f" % r["gflop"], "%.2f" % r["tflops"],
              "%.1f%%" % (100 * r["peak_share"]) if r["peak_share"] is not None else "n/a"] for r in rows]
    if opts.markdown:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for r in table:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(r[i])) for r in [header] + table) for i in range(len(header))]
        for r in [header] + table:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
