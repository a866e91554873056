"""benchmarks/kd_benefit.py and benchmarks/bench_step.py in shrunk modes: the files and columns, never the values."""
import json
import os
import subprocess
import sys

from e2e_common import ROOT


def _run(args, timeout=600):
    proc = subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="2"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_kd_benefit_smoke_writes_table_json_and_chart_and_resumes(tmp_path):
    out = tmp_path / "bench"
    printed = _run(["benchmarks/kd_benefit.py", "--profile", "smoke", "--out", str(out)])
    table = (out / "table.md").read_text()
    assert table.splitlines()[0] == ("| method | mIoU (mean +- std) | gain over baseline | per seed | "
                                     "train s/run |")
    assert "| none (baseline) |" in table and "| kd |" in table and "| teacher " in table
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["methods"]) == {"none", "kd"}
    for row in summary["methods"].values():
        assert set(row) >= {"miou", "mean", "std", "gain", "seconds"} and len(row["miou"]) == 1
    assert (out / "chart.png").stat().st_size > 1000
    for run in ("teacher", "none_seed0", "kd_seed0"):
        assert (out / run / "eval" / "results.json").is_file()
    assert "written" in printed
    # A second call reads the finished runs back instead of training again.
    again = _run(["benchmarks/kd_benefit.py", "--profile", "smoke", "--out", str(out)])
    assert json.loads((out / "results.json").read_text())["methods"] == summary["methods"]
    assert "kd" in again


def test_bench_step_runs_one_training_step_and_prints_the_columns():
    printed = _run(["benchmarks/bench_step.py", "--method", "af_dcd", "--device", "cpu", "--size", "quarter",
                    "--settings", "fp32", "--steps", "1", "--warmup", "0", "--teacher-backbone", "resnet18"])
    lines = printed.strip().splitlines()
    assert lines[0].startswith("Training step: DeepLabV3-resnet18 -> DeepLabV3-resnet18, batch 2, crop 128x256")
    assert lines[1].split() == ["method", "setting", "images/s", "ms/step", "peak", "MB", "GFLOP/step", "TFLOP/s",
                                "share", "of", "peak"]
    cells = lines[2].split()
    assert cells[:2] == ["af_dcd", "fp32"] and float(cells[2]) > 0 and float(cells[5]) > 0 and cells[-1] == "n/a"


def test_compare_predictions_refuses_a_folder_without_predictions(tmp_path):
    proc = subprocess.run([sys.executable, "tools/compare_predictions.py", "--dataset", "citys", "--data", str(tmp_path),
                           "--out", str(tmp_path / "p.png"), "teacher=%s" % tmp_path], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 1 and not (tmp_path / "p.png").exists()
    assert proc.stderr.strip().splitlines() == ["error: teacher=%s: expected NAME=DIR with DIR/pred from eval.py "
                                                "--save-pred" % tmp_path]
