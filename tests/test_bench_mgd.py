"""benchmarks/bench_mgd_synthetic.py shrunk (8 images, 2 iterations per run): the files and columns, never the
values (a file of its own so that ``pytest -n 2 --dist loadfile`` can run it beside the other benchmark smokes)."""
import json

from e2e_common import run_cli


def test_bench_mgd_synthetic_shrunk_writes_table_and_json_and_reads_finished_runs_back(tmp_path):
    out = tmp_path / "mgd"
    shrunk = ["--out", str(out), "--num-train", "8", "--num-val", "2", "--size", "64", "128", "--ratio", "4",
              "--batch-size", "2", "--iterations", "2", "--teacher-iterations", "2", "--seeds", "0", "--workers", "0"]

    def bench() -> None:
        code, stdout, stderr = run_cli("benchmarks/bench_mgd_synthetic.py", shrunk, env={"OMP_NUM_THREADS": "2"},
                                       timeout=600)
        assert code == 0, stdout[-2000:] + stderr[-3000:]

    bench()
    table = (out / "table.md").read_text().splitlines()
    assert table[0] == "| student (DeepLabV3+ R18, 1/4 labeled of 8) | seed 0 | mean |"
    assert table[2].startswith("| labeled only | ") and table[3].startswith("| MGD | ")
    assert table[5].startswith("Teachers (CPS, 2 iterations): T_D resnet18 ")
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["teachers"]) == {"deep", "wide"} and set(summary["miou"]) == {"labeled only", "MGD"}
    assert all(len(v) == 1 and v[0] > 0 for v in summary["run_seconds"].values())
    for run in ("cps_resnet18_2it", "cps_mobilenetv2_2it", "sup_seed0", "mgd_seed0"):
        assert (out / run / "bench_time.json").is_file()
    logs = {log: log.stat().st_mtime_ns for log in out.glob("*.log")}
    bench()       # every run is finished: nothing is trained again
    assert len(logs) == 4 and all(log.stat().st_mtime_ns == mtime for log, mtime in logs.items())
    assert json.loads((out / "results.json").read_text())["miou"] == summary["miou"]
