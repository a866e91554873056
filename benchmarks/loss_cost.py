"""Measuring one loss (or the student) for ``bench_losses.py``: shapes, inputs, timing, peak memory.

``run_spec(spec)`` measures what a JSON-able spec describes, in the calling process:
``{"kind": "student"|"method", "argv": train_kd.py flags, "geometry": {"student", "teachers"} (methods),
"device", "batch", "crop", "repeat", "time_budget", "seed", "threads", "ignore_fraction"}`` (methods also
``"variant": "naive"``: the direct formulation of ``tests/naive_losses.py``; ``"count_flops": true``: one
more step under torch's FlopCounterMode) and returns ``{"status": "ok", "ms", "times_ms", "peak_mb",
"memory_note"}`` (methods also ``"values"``: the first step's terms, ``"flops"``, ``"switched"``) or
``{"status": "skipped", "reason"}``.
A geometry is ``{"names": [...], "extras": [...], "shapes": {name: [channels, stride]}}`` (what
``network_geometry`` reads from a dummy forward); inputs are random tensors of ceil(crop / stride).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

import losses
import train_kd
from models.outputs import SegOutputs

# Named crop sizes of the benchmarks' --size (the Cityscapes training crop and its halvings).
SIZES = {"full": (512, 1024), "half": (256, 512), "quarter": (128, 256)}
PROBE_SIZE = 64             # side of the dummy input used to read channels and strides
Geometry = Dict[str, Any]   # {"names": [...], "extras": [...], "shapes": {name: [channels, stride]}}


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
    from engine.specs import build_network
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
    """Student (None when the method does not train one) and teacher geometries, as engine/specs.py builds them."""
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


# --------------------------------------------------------------------------- measuring
def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_kb() -> Optional[int]:
    """VmHWM of this process (Linux), None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), None)
    except OSError:
        return None


class PeakMemory:
    """Peak memory growth from ``start()``: CUDA allocator peak, or the process's peak RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.note, self.use_hwm = device, "", False

    def _peak_bytes(self) -> int:
        if self.use_hwm:
            return (_peak_rss_kb() or 0) * 1024
        scale = 1 if sys.platform == "darwin" else 1024      # ru_maxrss: bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def start(self) -> None:
        if self.device.type == "cuda":
            _synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")                # Linux: reset the peak RSS to the current RSS
            self.use_hwm = _peak_rss_kb() is not None
        except OSError:
            self.use_hwm = False
        if not self.use_hwm:
            self.note = "ru_maxrss (an earlier or inherited peak may hide part of the growth)"
        self.base = self._peak_bytes()

    def growth_mb(self) -> float:
        if self.device.type == "cuda":
            _synchronize(self.device)
            return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2 ** 20
        return max(0, self._peak_bytes() - self.base) / 2 ** 20


def timed_runs(step: Callable[[], None], cleanup: Callable[[], None], repeat: int, device: torch.device,
               time_budget: float = float("inf")) -> List[float]:
    """One warm-up then up to ``repeat`` timed calls of ``step`` (ms); no new call once ``time_budget``
    seconds are spent, but always at least one timed call."""
    times: List[float] = []
    began = time.perf_counter()
    for i in range(repeat + 1):
        _synchronize(device)
        start = time.perf_counter()
        step()
        _synchronize(device)
        if i > 0:
            times.append((time.perf_counter() - start) * 1000.0)
        cleanup()
        if times and time.perf_counter() - began > time_budget:
            break
    return times


def measure_student(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The real student's train-mode forward + task loss + backward."""
    from engine.specs import build_network
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

    times = timed_runs(step, lambda: net.zero_grad(set_to_none=True), spec["repeat"], device,
                       spec.get("time_budget", float("inf")))
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
    switched: List[str] = []
    if spec.get("variant") == "naive":
        tests_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
        if tests_dir not in sys.path:
            sys.path.insert(0, tests_dir)
        from naive_losses import use_naive    # the direct formulations, kept with the tests
        switched = use_naive(method)
        if not switched:
            return {"status": "skipped", "reason": "no reference (naive) form for %s" % spec["argv"][1]}
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

    values: Dict[str, float] = {}

    def step() -> None:
        terms = method(ctx)
        if not terms:
            raise ValueError("the method returned no loss terms")
        if not values:     # the first (warm-up) step's terms: the same inputs and draws for every variant
            values.update({name: float(value.detach()) for name, value in terms.items()})
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
        times = timed_runs(step, cleanup, spec["repeat"], device,
                       spec.get("time_budget", float("inf")))
        peak_mb = memory.growth_mb()
        flops = None
        if spec.get("count_flops"):
            from torch.utils.flop_counter import FlopCounterMode
            counter = FlopCounterMode(display=False)
            with counter:
                step()
            cleanup()
            flops = counter.get_total_flops()
    except Exception as exc:  # noqa: BLE001 - reported as a row, the other methods still run
        return {"status": "skipped", "reason": "failed while running: %s: %s" % (type(exc).__name__, exc)}
    return {"status": "ok", "ms": statistics.median(times), "times_ms": times, "peak_mb": peak_mb,
            "memory_note": memory.note, "values": values, "flops": flops, "switched": switched}


def run_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    return measure_student(spec) if spec["kind"] == "student" else measure_method(spec)
