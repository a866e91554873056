"""Cost of each distillation loss at the Cityscapes training shapes, next to the student's own cost.

    python benchmarks/bench_losses.py                       # every registered method, CPU, 512x1024
    python benchmarks/bench_losses.py --methods kd,af_dcd --device cuda --repeat 20 --markdown
    python benchmarks/bench_losses.py --method-args "--teacher-backbone resnet50"

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
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

import losses  # noqa: E402
import train_kd  # noqa: E402
from models.outputs import SegOutputs  # noqa: E402

RESULT_PREFIX = "BENCH_RESULT "
PROBE_SIZE = 64             # side of the dummy input used to read channels and strides
Geometry = Dict[str, Any]   # {"names": [...], "extras": [...], "shapes": {name: [channels, stride]}}


# --------------------------------------------------------------------------- options
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--methods", default=None,
                   help="comma-separated --kd-method names (default: every registered method but 'none')")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median), after 1 warm-up")
    p.add_argument("--batch", type=int, default=2, help="per-GPU batch")
    p.add_argument("--crop", type=int, nargs=2, default=[512, 1024], metavar=("H", "W"))
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
    if opts.repeat < 1 or opts.batch < 1 or min(opts.crop) < 8:
        parser.error("--repeat and --batch must be >= 1 and --crop at least 8 8")
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
    return opts


def train_argv(opts: argparse.Namespace, method: str, extra: Sequence[str] = ()) -> List[str]:
    """The train_kd.py command line of this method (the prepared extras first, so --method-args wins)."""
    return (["--kd-method", method, "--dataset", opts.dataset, "--crop-size", str(opts.crop[0]), str(opts.crop[1])]
            + list(extra) + list(opts.extra_argv))


def parse_train_args(argv: List[str]) -> argparse.Namespace:
    """train_kd.parse_args, turning its usage error into a ValueError with argparse's message."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return train_kd.parse_args(argv)
    except SystemExit as exc:
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        raise ValueError(lines[-1] if lines else "train_kd.parse_args exited with %s" % exc.code) from None


# --------------------------------------------------------------------------- shapes
def network_geometry(model: str, backbone: str, num_classes: int, aux: bool, head_width=None) -> Geometry:
    """Output names, channels and strides of a network, from one eval-mode dummy forward."""
    from engine.build import build_network
    net = build_network(model, backbone, num_classes, aux=aux, pretrained=None, head_width=head_width)
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
    shapes = {name: [int(t.shape[1]), PROBE_SIZE // int(t.shape[-2])]
              for name, t in out.as_dict().items() if t.dim() == 4}
    return {"names": list(out.names), "extras": sorted(out.extras), "shapes": shapes}


def channel_info(geometry: Optional[Geometry]) -> Optional[Dict[str, int]]:
    return None if geometry is None else {name: c for name, (c, _) in geometry["shapes"].items()}


def network_geometries(args: argparse.Namespace, trains_student: bool, num_teachers: int,
                       cache: Dict[tuple, Geometry]) -> Dict[str, Any]:
    """Student (None when the method does not train one) and teacher geometries, as engine/build.py builds them."""
    def geometry(model, backbone, aux, width):
        key = (model, backbone, args.num_classes, aux, width)
        if key not in cache:
            cache[key] = network_geometry(model, backbone, args.num_classes, aux, width)
        return cache[key]
    student = (geometry(args.student_model, args.student_backbone, args.aux, args.student_head_width)
               if trains_student else None)
    specs = [(args.teacher_model, args.teacher_backbone),
             (args.teacher2_model or args.teacher_model, args.teacher2_backbone or args.teacher_backbone)]
    teachers = [geometry(model, backbone, backbone.startswith("resnet"), args.teacher_head_width)
                for model, backbone in specs[:num_teachers]]
    return {"student": student, "teachers": teachers}


def make_outputs(geometry: Geometry, batch: int, crop: Sequence[int], requires_grad: bool,
                 device: torch.device, generator: torch.Generator) -> SegOutputs:
    """Random tensors shaped like the network's outputs for a batch of crops (size = ceil(crop / stride))."""
    tensors = {}
    for name, (channels, stride) in geometry["shapes"].items():
        height, width = -(-crop[0] // stride), -(-crop[1] // stride)
        t = torch.randn(batch, channels, height, width, generator=generator).to(device)
        tensors[name] = t.requires_grad_(requires_grad)
    return SegOutputs([tensors[n] for n in geometry["names"]], geometry["names"],
                      {n: tensors[n] for n in geometry["extras"]})


def make_labels(batch: int, crop: Sequence[int], num_classes: int, ignore_index: int, ignore_fraction: float,
                device: torch.device, generator: torch.Generator) -> torch.Tensor:
    labels = torch.randint(0, num_classes, (batch, crop[0], crop[1]), generator=generator)
    labels[torch.rand(labels.shape, generator=generator) < ignore_fraction] = ignore_index
    return labels.to(device)


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


# --------------------------------------------------------------------------- measuring (worker side)
def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory growth from ``start()``: CUDA allocator peak, or the process's peak RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.note = ""

    @staticmethod
    def _status_kb(field: str) -> Optional[int]:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def _peak_bytes(self) -> int:
        if self.source == "VmHWM":
            return (self._status_kb("VmHWM") or 0) * 1024
        scale = 1 if sys.platform == "darwin" else 1024      # bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def start(self) -> None:
        if self.device.type == "cuda":
            _synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return
        self.source = "ru_maxrss"
        if self._status_kb("VmHWM") is not None:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")            # reset the peak RSS to the current RSS
                self.source = "VmHWM"
            except OSError:
                pass
        self.base = self._peak_bytes()
        if self.source == "ru_maxrss":
            self.note = "ru_maxrss (may be hidden by an earlier or inherited peak)"

    def growth_mb(self) -> float:
        if self.device.type == "cuda":
            _synchronize(self.device)
            return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2 ** 20
        return max(0, self._peak_bytes() - self.base) / 2 ** 20


def timed_runs(step: Callable[[], None], cleanup: Callable[[], None], repeat: int, device: torch.device) -> List[float]:
    """One warm-up then ``repeat`` timed calls of ``step``; milliseconds."""
    times = []
    for i in range(repeat + 1):
        _synchronize(device)
        start = time.perf_counter()
        step()
        _synchronize(device)
        if i > 0:
            times.append((time.perf_counter() - start) * 1000.0)
        cleanup()
    return times


def measure_student(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The real student's train-mode forward + task loss + backward."""
    from engine.build import build_network
    args = parse_train_args(spec["argv"])
    device = torch.device(spec["device"])
    gen = torch.Generator().manual_seed(spec["seed"])
    net = build_network(args.student_model, args.student_backbone, args.num_classes, aux=args.aux,
                        pretrained=None, head_width=args.student_head_width).to(device).train()
    batch, crop = spec["batch"], spec["crop"]
    images = torch.randn(batch, 3, crop[0], crop[1], generator=gen).to(device)
    labels = make_labels(batch, crop, args.num_classes, args.ignore_index, spec["ignore_fraction"], device, gen)
    memory = PeakMemory(device)
    memory.start()

    def step() -> None:
        terms = losses.task_loss(net(images), labels, aux_weight=args.aux_weight if args.aux else 0.0,
                                 ignore_index=args.ignore_index)
        sum(terms.values()).backward()

    times = timed_runs(step, lambda: net.zero_grad(set_to_none=True), spec["repeat"], device)
    return {"status": "ok", "ms": statistics.median(times), "times_ms": times, "peak_mb": memory.growth_mb(),
            "memory_note": memory.note, "what": "%s/%s" % (args.student_model, args.student_backbone)}


def measure_method(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One distillation method's forward + backward (+ its optimizer-step hooks) on random outputs."""
    args = parse_train_args(spec["argv"])
    device = torch.device(spec["device"])
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    geometry = spec["geometry"]
    try:
        method = losses.build_method(args, channel_info(geometry["student"]),
                                     channel_info(geometry["teachers"][0] if geometry["teachers"] else None))
    except Exception as exc:  # noqa: BLE001 - any build failure becomes a 'skipped' row
        return {"status": "skipped", "reason": "cannot build: %s: %s" % (type(exc).__name__, exc)}
    method.to(device).train()
    batch, crop = spec["batch"], spec["crop"]
    student = (make_outputs(geometry["student"], batch, crop, True, device, gen)
               if geometry["student"] is not None else None)
    teachers = [make_outputs(g, batch, crop, False, device, gen) for g in geometry["teachers"]]
    labels = make_labels(batch, crop, args.num_classes, args.ignore_index, spec["ignore_fraction"], device, gen)
    with torch.no_grad():
        task_terms = ({k: v.detach() for k, v in losses.task_loss(
            student, labels, aux_weight=args.aux_weight if args.aux else 0.0, ignore_index=args.ignore_index).items()}
            if student is not None else {})
    ctx = losses.StepContext(student=student, labels=labels, iteration=args.max_iterations,
                             max_iterations=args.max_iterations, teacher=teachers[0] if teachers else None,
                             teachers=teachers, images=None, ignore_index=args.ignore_index, task_terms=task_terms)
    leaves = list(student.as_dict().values()) if student is not None else []
    memory = PeakMemory(device)
    memory.start()

    def step() -> None:
        terms = method(ctx)
        if not terms:
            raise ValueError("the method returned no loss terms")
        total = sum(terms.values())
        if total.requires_grad:
            total.backward()
        method.before_optimizer_step()
        method.after_optimizer_step(ctx)

    def cleanup() -> None:
        method.zero_grad(set_to_none=True)
        for t in leaves:
            t.grad = None

    try:
        times = timed_runs(step, cleanup, spec["repeat"], device)
    except Exception as exc:  # noqa: BLE001 - reported as a row, the other methods still run
        return {"status": "skipped", "reason": "failed while running: %s: %s" % (type(exc).__name__, exc)}
    return {"status": "ok", "ms": statistics.median(times), "times_ms": times, "peak_mb": memory.growth_mb(),
            "memory_note": memory.note}


def run_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    return measure_student(spec) if spec["kind"] == "student" else measure_method(spec)


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
                cache: Dict[tuple, Geometry]) -> Dict[str, Any]:
    """The worker spec of one method (raises ValueError/other with a reason when it cannot be set up)."""
    extra: List[str] = []
    for part in method.split("+"):
        if part in PREPARERS:
            default_teacher = network_geometries(base_args, False, 1, cache)["teachers"][0]
            extra += PREPARERS[part](base_args, workdir, channel_info(default_teacher))
    argv = train_argv(opts, method, extra)
    args = parse_train_args(argv)
    trains_student = all(c.trains_student for c in losses.method_classes(method))
    geometry = network_geometries(args, trains_student, losses.teachers_needed(args), cache)
    return {"kind": "method", "argv": argv, "geometry": geometry}


def measure_all(opts: argparse.Namespace, log=print) -> Dict[str, Any]:
    device = torch.device(opts.device)
    common = {"device": opts.device, "batch": opts.batch, "crop": list(opts.crop), "repeat": opts.repeat,
              "seed": opts.seed, "threads": opts.threads, "ignore_fraction": opts.ignore_fraction}
    run = (lambda s: run_isolated(s, opts.worker_timeout)) if device.type == "cpu" else run_spec
    if opts.threads:
        torch.set_num_threads(opts.threads)
    base_args = parse_train_args(train_argv(opts, "none"))
    cache: Dict[tuple, Geometry] = {}
    student = run(dict(common, kind="student", argv=train_argv(opts, "none")))
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
        "Time = median of %d run(s) after 1 warm-up of the method's forward + backward + optimizer-step hooks; "
        "fraction = that time / the student's own train-mode forward + task loss + backward." % opts.repeat,
        mem + ".", ""]
    header = ["method", "loss fwd+bwd ms", "peak mem MB", "fraction of student fwd+bwd time"]
    table = [["(student %s fwd+bwd)" % student["what"], "%.1f" % student["ms"], "%.1f" % student["peak_mb"], "1.000"]]
    for row in results["rows"]:
        if row["status"] == "ok":
            table.append([row["method"], "%.1f" % row["ms"], "%.1f" % row["peak_mb"],
                          "%.3f" % (row["ms"] / student["ms"])])
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
    results = measure_all(opts, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_report(opts, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
