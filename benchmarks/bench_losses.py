"""Cost of each distillation loss at the Cityscapes training shapes, next to the student's own cost.

    python benchmarks/bench_losses.py                       # every registered method, CPU, 512x1024
    python benchmarks/bench_losses.py --methods kd,af_dcd --device cuda --repeat 20 --markdown
    python benchmarks/bench_losses.py --method-args "--teacher-backbone resnet50"
    python benchmarks/bench_losses.py --compare-naive --size full     # optimised vs direct forms

For every ``--kd-method`` (``losses.available_methods()`` minus ``none``; ``a+b`` combinations are
accepted too) the method is built exactly as ``train_kd.py`` builds it (``train_kd.parse_args`` then
``losses.build_method`` with the networks' channel counts), fed random student/teacher outputs of
the real shapes (a ``SegOutputs`` like the models return, c1 at stride 4 and everything else at
the stride the network has, measured by a small dummy forward) and timed over one training step
of the loss alone: ``method(ctx)``, backward of the summed terms into the student outputs and the
method's own parameters, and the method's ``before_optimizer_step`` / ``after_optimizer_step``
hooks (so SKD's discriminator update and Af-DCD's gradient clipping count). The reference is the
real student's train-mode forward + task cross-entropy + backward at the same batch and crop.

Timing: median of ``--repeat`` runs after one warm-up. Memory on CUDA: ``max_memory_allocated``
above what was allocated once the inputs exist. Memory on CPU: every measurement runs in a fresh
process, and the figure is the growth of that process's peak RSS from just after the inputs exist
to after the runs. The peak is read from /proc/self/status (VmHWM, reset to the current RSS at the
baseline) rather than getrusage's ru_maxrss, because ru_maxrss is inherited across exec from the
launching process and would hide a child smaller than its parent; ru_maxrss is the fallback where
/proc is missing.

Methods that need a file get one made on the fly (``maskd``: a token file exported by a freshly
built ``maskd_tokens``); ``tf_kd_self`` gets the student's architecture as its teacher. A method
that cannot be built or run gives a row ``skipped: <reason>`` instead of stopping the benchmark.

``--compare-naive``: each optimised loss (Af-DCD's folded projector, CIRKD's chunked mini-batch and
memory terms, each CIRKD term alone) next to the direct formulation kept in ``tests/naive_losses.py``
on the same inputs and draws: time, peak memory, FLOPs (torch's FlopCounterMode, fwd + bwd) and the
ratios optimised / direct, plus the largest relative difference of the loss values.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

import losses  # noqa: E402
from benchmarks.loss_cost import (SIZES, Geometry, channel_info, network_geometries, parse_train_args,  # noqa: E402
                                  run_spec)

RESULT_PREFIX = "BENCH_RESULT "
# --compare-naive rows: (label, method, extra flags isolating the term)
NAIVE_ROWS = [
    ("af_dcd", "af_dcd", []),
    ("cirkd mini-batch term", "cirkd", ["--lambda-kd", "0", "--lambda-memory-pixel", "0", "--lambda-memory-region", "0"]),
    ("cirkd memory terms", "cirkd", ["--lambda-kd", "0", "--lambda-minibatch-pixel", "0"]),
]

# --------------------------------------------------------------------------- options
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--methods", default=None,
                   help="comma-separated --kd-method names (default: every registered method but 'none')")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median), after 1 warm-up")
    p.add_argument("--time-budget", type=float, default=30.0,
                   help="seconds per measurement after which no further run starts (at least 1 timed run)")
    p.add_argument("--batch", type=int, default=2, help="per-GPU batch")
    p.add_argument("--crop", type=int, nargs=2, default=[512, 1024], metavar=("H", "W"))
    p.add_argument("--size", choices=sorted(SIZES), default=None,
                   help="shorthand for --crop: full 512x1024, half 256x512, quarter 128x256")
    p.add_argument("--compare-naive", action="store_true",
                   help="time the optimised losses next to their direct forms (tests/naive_losses.py)")
    p.add_argument("--dataset", default="citys", help="dataset whose defaults the methods use")
    p.add_argument("--method-args", default="",
                   help="extra train_kd.py flags for every method and the networks, e.g. \"--teacher-backbone resnet50\"")
    p.add_argument("--ignore-fraction", type=float, default=0.1, help="share of label pixels set to ignore")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker-timeout", type=float, default=1800.0, help="seconds before a CPU measurement is given up")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def parse_options(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.worker is not None:
        return opts
    if opts.size:
        opts.crop = list(SIZES[opts.size])
    if opts.repeat < 1 or opts.batch < 1 or min(opts.crop) < 8 or opts.time_budget <= 0:
        parser.error("--repeat and --batch must be >= 1, --time-budget > 0 and --crop at least 8 8")
    if not 0.0 <= opts.ignore_fraction < 1.0:
        parser.error("--ignore-fraction must be in [0, 1), got %g" % opts.ignore_fraction)
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch; use --device cpu")
    available = [m for m in losses.available_methods() if m != "none"]
    opts.method_list = [m.strip() for m in opts.methods.split(",") if m.strip()] if opts.methods else available
    for spec in opts.method_list:
        unknown = [part for part in spec.split("+") if part not in losses.available_methods()]
        if unknown:
            parser.error("--methods: unknown method %s; registered: %s" % (", ".join(unknown), ", ".join(available)))
    opts.extra_argv = shlex.split(opts.method_args)
    try:
        opts.base_args = parse_train_args(train_argv(opts, "none"))
    except ValueError as exc:
        parser.error("--method-args / --dataset / --crop: %s" % exc)
    return opts


def train_argv(opts: argparse.Namespace, method: str, extra: Sequence[str] = ()) -> List[str]:
    """The train_kd.py command line of this method (the prepared extras first, so --method-args wins)."""
    return (["--kd-method", method, "--dataset", opts.dataset, "--crop-size", str(opts.crop[0]), str(opts.crop[1])]
            + list(extra) + list(opts.extra_argv))


# --------------------------------------------------------------------------- files some methods need
def prepare_maskd(base_args: argparse.Namespace, workdir: str, teacher_info: Optional[Dict[str, int]]) -> List[str]:
    """MasKD stage 2 loads stage-1 tokens: export them from a freshly built maskd_tokens."""
    args = argparse.Namespace(**vars(base_args))
    args.kd_method = "maskd_tokens"
    path = os.path.join(workdir, "maskd_tokens.pth")
    losses.build_method(args, None, teacher_info).export_state(path)
    return ["--pretrained-mask", path]


def prepare_teacher_is_student(base_args: argparse.Namespace, workdir: str,
                               teacher_info: Optional[Dict[str, int]]) -> List[str]:
    """Tf-KD self-training distils from a trained copy of the student's architecture."""
    return ["--teacher-model", base_args.student_model, "--teacher-backbone", base_args.student_backbone]


PREPARERS: Dict[str, Callable[[argparse.Namespace, str, Optional[Dict[str, int]]], List[str]]] = {
    "maskd": prepare_maskd,
    "tf_kd_self": prepare_teacher_is_student,
}


def run_isolated(spec: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """``run_spec`` in a fresh Python process (CPU peak RSS only means something per process)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": "timed out after %.0f s (raise --worker-timeout)" % timeout}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = [line for line in proc.stderr.splitlines() if line.strip()]
    why = "killed by signal %d (out of memory?)" % -proc.returncode if proc.returncode < 0 else \
        "exit code %d" % proc.returncode
    return {"status": "skipped", "reason": "worker %s: %s" % (why, tail[-1] if tail else "no output")}


# --------------------------------------------------------------------------- driver
def method_spec(opts: argparse.Namespace, method: str, workdir: str, base_args: argparse.Namespace,
                cache: Dict[tuple, Geometry], flags: Sequence[str] = ()) -> Dict[str, Any]:
    """The worker spec of one method (raises ValueError/other with a reason when it cannot be set up)."""
    extra: List[str] = list(flags)
    for part in method.split("+"):
        if part in PREPARERS:
            default_teacher = network_geometries(base_args, False, 1, cache)["teachers"][0]
            extra += PREPARERS[part](base_args, workdir, channel_info(default_teacher))
    argv = train_argv(opts, method, extra)
    args = parse_train_args(argv)
    spec = args.method_spec      # parsed once by train_kd.parse_args
    geometry = network_geometries(args, spec.trains_student, spec.teachers_needed(args), cache)
    return {"kind": "method", "argv": argv, "geometry": geometry}


def measure_all(opts: argparse.Namespace, log=print) -> Dict[str, Any]:
    device = torch.device(opts.device)
    common = {"device": opts.device, "batch": opts.batch, "crop": list(opts.crop), "repeat": opts.repeat,
              "time_budget": opts.time_budget,
              "seed": opts.seed, "threads": opts.threads, "ignore_fraction": opts.ignore_fraction}
    run = (lambda s: run_isolated(s, opts.worker_timeout)) if device.type == "cpu" else run_spec
    if opts.threads:
        torch.set_num_threads(opts.threads)
    base_args = opts.base_args
    cache: Dict[tuple, Geometry] = {}
    student = run(dict(common, kind="student", argv=train_argv(opts, "none")))
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if student["status"] != "ok":
        raise SystemExit("error: cannot time the student: %s" % student["reason"])
    log("student %s fwd+bwd: %.1f ms" % (student["what"], student["ms"]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_losses_") as workdir:
        for i, method in enumerate(opts.method_list, 1):
            try:
                result = run(dict(common, **method_spec(opts, method, workdir, base_args, cache)))
            except Exception as exc:  # noqa: BLE001 - a method that cannot be set up is a row, not a crash
                result = {"status": "skipped", "reason": "cannot set up: %s: %s" % (type(exc).__name__, exc)}
            if device.type == "cuda":
                torch.cuda.empty_cache()
            result["method"] = method
            rows.append(result)
            log("[%d/%d] %s: %s" % (i, len(opts.method_list), method, "%.1f ms" % result["ms"]
                                    if result["status"] == "ok" else "skipped: " + result["reason"]))
    return {"student": student, "rows": rows, "base_args": base_args}


def compare_naive(opts: argparse.Namespace, log=print) -> str:
    """Each optimised loss next to its direct form: a markdown table of costs, ratios and value difference."""
    common = {"device": opts.device, "batch": opts.batch, "crop": list(opts.crop), "repeat": opts.repeat,
              "time_budget": opts.time_budget, "seed": opts.seed, "threads": opts.threads,
              "ignore_fraction": opts.ignore_fraction, "count_flops": True}
    run = (lambda s: run_isolated(s, opts.worker_timeout)) if opts.device == "cpu" else run_spec
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cache: Dict[tuple, Geometry] = {}
    lines = ["Optimised vs direct loss forms: batch %d, crop %dx%d, %s; ratio = optimised / direct." % (
        opts.batch, opts.crop[0], opts.crop[1], "CPU, %d thread(s)" % (opts.threads or torch.get_num_threads())
        if opts.device == "cpu" else "CUDA, %s" % torch.cuda.get_device_name()),
        "", "| loss | form | fwd+bwd ms | peak MB | GFLOPs | time ratio | memory ratio | FLOP ratio | max rel. value diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="bench_losses_") as workdir:
        for label, method, flags in NAIVE_ROWS:
            if opts.methods and method not in opts.method_list:
                continue
            results = {}
            for variant in ("optimised", "naive"):
                try:
                    spec = dict(common, variant=variant, **method_spec(opts, method, workdir, opts.base_args, cache,
                                                                        flags))
                    results[variant] = run(spec)
                except Exception as exc:  # noqa: BLE001 - a row, not a crash
                    results[variant] = {"status": "skipped", "reason": "%s: %s" % (type(exc).__name__, exc)}
                if opts.device == "cuda":
                    torch.cuda.empty_cache()
                row = results[variant]
                log("%s (%s): %s" % (label, variant, "%.1f ms" % row["ms"] if row["status"] == "ok"
                                     else "skipped: " + row["reason"]))
            fast, slow = results["optimised"], results["naive"]
            for variant, row in (("optimised", fast), ("direct", slow)):
                if row["status"] != "ok":
                    lines.append("| %s | %s | skipped: %s | | | | | | |" % (label, variant, row["reason"].replace("|", "/")))
                    continue
                cells = ["%.1f" % row["ms"], "%.1f" % row["peak_mb"], "%.2f" % (row["flops"] / 1e9)]
                if variant == "optimised" and slow["status"] == "ok":
                    diff = max(abs(row["values"][k] - slow["values"][k]) / max(abs(slow["values"][k]), 1e-30)
                               for k in slow["values"])
                    cells += ["%.2f" % (row["ms"] / slow["ms"]), "%.2f" % (row["peak_mb"] / max(slow["peak_mb"], 1e-9)),
                              "%.2f" % (row["flops"] / max(slow["flops"], 1)), "%.1e" % diff]
                else:
                    cells += ["", "", "", ""]
                lines.append("| %s | %s | %s |" % (label, variant, " | ".join(cells)))
    return "\n".join(lines)


def format_report(opts: argparse.Namespace, results: Dict[str, Any]) -> str:
    student, base_args = results["student"], results["base_args"]
    b, (h, w) = opts.batch, opts.crop
    if opts.device == "cpu":
        threads = opts.threads or torch.get_num_threads()
        where = "CPU, %d thread(s)" % threads
        mem = ("CPU memory = peak RSS growth of a fresh process per measurement, from just after its inputs "
               "exist to after the runs (includes the gradients of the student outputs)")
    else:
        where = "CUDA, %s" % torch.cuda.get_device_name(torch.device(opts.device))
        mem = "GPU memory = max_memory_allocated above the inputs (includes the gradients of the student outputs)"
    lines = [
        "Loss cost per training step: batch %d, crop %dx%d, %s, dataset %s; student %s/%s, teacher %s/%s%s." % (
            b, h, w, where, base_args.dataset, base_args.student_model, base_args.student_backbone,
            base_args.teacher_model, base_args.teacher_backbone,
            (" (extra flags: %s)" % opts.method_args) if opts.method_args else ""),
        "Time = median of %d run(s) after 1 warm-up (n=k: only k, no run starts after %g s) of the method's forward + "
        "backward + optimizer-step hooks; fraction = that time / the student's own train-mode forward + task loss "
        "+ backward." % (opts.repeat, opts.time_budget),
        mem + ".", ""]
    header = ["method", "loss fwd+bwd ms", "peak mem MB", "fraction of student fwd+bwd time"]

    def ms_cell(row: Dict[str, Any]) -> str:
        runs = len(row.get("times_ms", ()))
        return "%.1f" % row["ms"] + (" (n=%d)" % runs if 0 < runs < opts.repeat else "")

    table = [["(student %s fwd+bwd)" % student["what"], ms_cell(student), "%.1f" % student["peak_mb"], "1"]]
    for row in results["rows"]:
        if row["status"] == "ok":
            table.append([row["method"], ms_cell(row), "%.1f" % row["peak_mb"],
                          "%.3g" % (row["ms"] / student["ms"])])
        else:
            table.append([row["method"], "skipped: " + row["reason"].replace("|", "/").replace("\n", " "), "", ""])
    notes = sorted({r.get("memory_note") for r in [student] + results["rows"] if r.get("memory_note")})
    if opts.markdown:
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * 3) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in table]
    else:
        numeric = [r for r in [header] + table if not r[1].startswith("skipped")]
        widths = [max(len(r[0]) for r in [header] + table)] + [max(len(r[i]) for r in numeric) for i in (1, 2, 3)]
        for r in [header] + table:
            cells = [r[0].ljust(widths[0])] + ([r[1]] if r[1].startswith("skipped") else
                                               [c.rjust(width) for c, width in zip(r[1:], widths[1:])])
            lines.append("  ".join(cells).rstrip())
    if notes:
        lines += ["", "Memory measured with " + "; ".join(notes) + "."]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = parse_options(argv)
    if opts.worker is not None:
        result = run_spec(json.loads(opts.worker))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if opts.compare_naive:
        print(compare_naive(opts, log))
        return 0
    results = measure_all(opts, log=log)
    print(format_report(opts, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
