"""benchmarks/bench_losses.py on tiny shapes: shapes follow the crop, rows come out, failures become rows."""
import math
import os
import re
import subprocess
import sys

import pytest
import torch

import losses
from benchmarks import bench_losses
from benchmarks.loss_cost import make_labels, make_outputs, network_geometry, run_spec
from e2e_common import ROOT

TINY = ["--crop", "64", "128", "--repeat", "1", "--batch", "2"]


def test_geometry_scales_with_crop():
    geometry = network_geometry("deeplabv3", "resnet18", 19, aux=True)
    out = make_outputs(geometry, 2, (64, 128), True, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert list(out.names) == ["logits", "aux_logits", "c4", "head_feat"]
    shapes = {name: tuple(t.shape) for name, t in out.as_dict().items()}
    assert shapes["c1"] == (2, 64, 16, 32)                      # stride 4
    assert shapes["c2"] == (2, 128, 8, 16) and shapes["c4"] == (2, 512, 8, 16)   # stride 8 (dilated)
    assert shapes["logits"] == shapes["aux_logits"] == (2, 19, 8, 16)
    assert shapes["head_feat"] == (2, 128, 8, 16)
    assert out.c4.requires_grad and out.c4 is out.get("c4")
    labels = make_labels(2, (64, 128), 19, -1, 0.1, torch.device("cpu"), torch.Generator().manual_seed(0))
    ignored = (labels == -1).float().mean().item()
    assert labels.shape == (2, 64, 128) and 0.05 < ignored < 0.15 and labels.max() < 19


def test_cli_tiny_run_prints_a_row_per_method(capsys):
    assert bench_losses.main(TINY + ["--methods", "kd,maskd", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "CPU memory = peak RSS growth" in out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
            for line in out.splitlines() if line.startswith("| ") and "---" not in line}
    assert set(rows) == {"method", "(student deeplabv3/resnet18 fwd+bwd)", "kd", "maskd"}
    student_ms = float(rows["(student deeplabv3/resnet18 fwd+bwd)"][0])
    for name in ("kd", "maskd"):                # maskd ran: its token file was made on the fly
        ms, mem, fraction = rows[name]
        assert float(ms) > 0 and math.isfinite(float(mem))
        assert float(fraction) == pytest.approx(float(ms) / student_ms, rel=0.05, abs=2e-3)


@pytest.fixture
def broken_methods():
    """Two throw-away methods: one cannot be built, one fails in forward."""
    @losses.register("_bench_cannot_build")
    class CannotBuild(losses.DistillMethod):
        @classmethod
        def from_args(cls, args, student_info, teacher_info):
            raise ValueError("needs a file that is not there")

    @losses.register("_bench_fails")
    class Fails(losses.DistillMethod):
        @classmethod
        def from_args(cls, args, student_info, teacher_info):
            return cls()

        def forward(self, ctx):
            raise RuntimeError("shape mismatch")

    yield ["_bench_cannot_build", "_bench_fails"]
    for name in ("_bench_cannot_build", "_bench_fails"):
        losses.registry._REGISTRY.pop(name, None)


def test_unusable_methods_become_skipped_rows(broken_methods):
    opts = bench_losses.parse_options(TINY + ["--methods", ",".join(broken_methods)])
    cache = {}
    results = {}
    for name in broken_methods:
        spec = dict(bench_losses.method_spec(opts, name, "/nonexistent", opts.base_args, cache),
                    device="cpu", batch=2, crop=[64, 128], repeat=1, seed=0, threads=None, ignore_fraction=0.1)
        results[name] = run_spec(spec)
    assert results["_bench_cannot_build"] == {"status": "skipped",
                                              "reason": "cannot build: ValueError: needs a file that is not there"}
    assert results["_bench_fails"]["status"] == "skipped"
    assert "RuntimeError: shape mismatch" in results["_bench_fails"]["reason"]
    student = {"status": "ok", "ms": 10.0, "peak_mb": 1.0, "what": "deeplabv3/resnet18"}
    rows = [dict(r, method=n) for n, r in results.items()]
    text = bench_losses.format_report(opts, {"student": student, "rows": rows, "base_args": opts.base_args})
    assert re.search(r"_bench_cannot_build\s+skipped: cannot build: ValueError", text)


def test_bad_options_are_one_line_errors(capsys):
    with pytest.raises(SystemExit):
        bench_losses.parse_options(["--methods", "kd,no_such_method"])
    assert "unknown method no_such_method" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_losses.parse_options(["--method-args", "--no-such-flag 1"])
    assert "unrecognized arguments" in capsys.readouterr().err


PEAK_PROBE = """
import torch
from benchmarks.loss_cost import PeakMemory
meter = PeakMemory(torch.device("cpu"))
meter.start()
block = torch.ones(64 * 2 ** 20, dtype=torch.float32) if meter.use_hwm else None   # 256 MiB, written
print(meter.use_hwm, meter.growth_mb())
"""


def test_peak_memory_sees_a_large_allocation():
    """The meter behind the memory column: 256 MiB touched after start() shows as >= 200 MiB. In a fresh
    process, as bench_losses runs: inside a long-lived test worker the allocator may hand back pages that
    an earlier test left resident, and the peak RSS then does not move."""
    proc = subprocess.run([sys.executable, "-c", PEAK_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    use_hwm, grown = proc.stdout.split()
    if use_hwm != "True":
        pytest.skip("no /proc peak-RSS reset on this platform (the column is then a lower bound)")
    assert float(grown) >= 200, grown


def test_compare_naive_prints_both_forms_and_their_ratios(capsys):
    # A MobileNetV2 student and a ResNet-18 teacher keep Af-DCD small (320 -> 512 channels, still folded).
    small = ["--method-args", "--teacher-backbone resnet18 --student-model deeplab_mobile --student-backbone mobilenetv2"]
    assert bench_losses.main(["--compare-naive", "--crop", "128", "256", "--repeat", "1"] + small) == 0
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines()
            if line.startswith("| ") and "---" not in line and not line.startswith("| loss")]
    assert [(r[0], r[1]) for r in rows] == [(label, form) for label, _, _ in bench_losses.NAIVE_ROWS
                                           for form in ("optimised", "direct")]
    for optimised in rows[::2]:
        ratios = [float(c) for c in optimised[5:8]]
        assert all(r > 0 for r in ratios)
        assert float(optimised[8]) < 1e-4          # the same loss values on the same inputs
    af_dcd_flop_ratio = float(rows[0][7])
    assert af_dcd_flop_ratio < 1.0                 # the fold reads 320 instead of 512 channels
