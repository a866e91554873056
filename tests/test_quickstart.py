"""README command 1 (train_scripts/quickstart.sh) end to end, shrunk to a couple of iterations."""
import os
import subprocess

from e2e_common import ROOT


def test_quickstart_runs_and_prints_three_results(tmp_path):
    env = dict(os.environ, TEACHER_ITERS="1", STUDENT_ITERS="1", NUM_TRAIN="2", NUM_VAL="1", SIZE_H="128",
               SIZE_W="256", BATCH="2", OUT=str(tmp_path / "out"), DATA=str(tmp_path / "data"), OMP_NUM_THREADS="2")
    proc = subprocess.run(["bash", os.path.join(ROOT, "train_scripts", "quickstart.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout[proc.stdout.index("run "):]
    for row in ("teacher R101", "student R18 (none)", "student R18 (af_dcd)"):
        assert row in table
    for run in ("teacher", "student", "af_dcd"):
        assert (tmp_path / "out" / run / "eval" / "results.json").is_file()
