"""README command 1 (train_scripts/quickstart.sh) end to end, shrunk to a couple of iterations."""
import json
import os
import subprocess

from e2e_common import ROOT


def test_quickstart_runs_and_prints_three_results_and_a_picture(tmp_path):
    env = dict(os.environ, TEACHER_ITERS="1", STUDENT_ITERS="1", NUM_TRAIN="2", NUM_VAL="1", SIZE_H="64",
               SIZE_W="128", CROP="64", BATCH="2", OUT=str(tmp_path / "out"), DATA=str(tmp_path / "data"),
               OMP_NUM_THREADS="2")
    proc = subprocess.run(["bash", os.path.join(ROOT, "train_scripts", "quickstart.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout[proc.stdout.index("run "):]
    for row in ("teacher R18 (1 it)", "student MBV2 (none)", "student MBV2 (kd)"):
        assert row in table
    assert "distillation: " in table and "teacher - baseline = " in table
    for run in ("teacher", "baseline", "distilled"):
        result = json.loads((tmp_path / "out" / run / "eval" / "results.json").read_text())
        assert 0.0 <= result["mIoU"] <= 1.0
    picture = tmp_path / "out" / "predictions.png"
    assert picture.stat().st_size > 500 and ("picture (image | label | teacher | baseline | kd): %s" % picture) in proc.stdout
