"""DKD / DKD-M through the real CLI on synthetic VOC-format data: a 3-step overlap task step by step
(each step's teacher = the previous step's weights), the exemplar memory, exact resume of a killed
step, eval.py's old/new/all/hIoU, every task script's steps parse, and the bad inputs of issue 13."""
import glob
import json
import os
import re
import shlex

import pytest
import torch

from e2e_common import ROOT, evaluate, run_cli, student_weights, train

TASK = "voc:7-7:overlap"        # synthetic VOC has classes 2, 6, 7 | 14 | 15, 19: three non-empty steps
WEIGHTS = "kd_dkd_deeplabv3_resnet18_voc.pth"
COMMON = ["--data", None, "--pipeline", "dkd", "--crop-size", "40", "40", "--batch-size", "4", "--workers", "0",
          "--log-iter", "1", "--no-progress", "--nesterov", "--head-lr-mult", "10", "--val-per-iters", "1000",
          "--seed", "1"]


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    from datasets.synthetic import generate
    return generate("voc", str(tmp_path_factory.mktemp("dkd") / "voc"), num_train=24, num_val=4, size=(64, 64),
                    seed=0)["root"]


def flags(voc):
    return [voc if a is None else a for a in COMMON]


@pytest.fixture(scope="module")
def task_run(voc, tmp_path_factory):
    """The whole task through tools/run_incremental.py (DKD-M, memory 3)."""
    out = tmp_path_factory.mktemp("task") / "run"
    argv = ["--incremental", TASK, "--out", str(out), "--iterations", "12", "3", "3", "--lr", "0.01", "0.001",
            "--pos-weight", "2", "1", "--backbone", "resnet18", "--launcher", "python", "--"] + flags(voc) + [
            "--memory-size", "3"]
    code, stdout, err = run_cli("tools/run_incremental.py", argv, timeout=900)
    assert code == 0, err[-3000:]
    return out, stdout


def test_three_steps_each_distilling_the_previous(task_run):
    out, stdout = task_run
    for step in range(3):
        folder = out / ("step_%d" % step)
        assert (folder / "done").is_file() and (folder / WEIGHTS).is_file()
        info = json.load(open(folder / "incremental.json"))
        assert info == {"incremental": TASK, "step": step, "head_widths": [7, 7, 6][:step + 1], "memory_size": 3}
        results = json.load(open(folder / "results.json"))["last"]
        assert ("hIoU" in results) == (step > 0) and "mIoU_all" in results
    assert "--teacher-pretrained %s" % (out / "step_1" / WEIGHTS) in stdout
    weights = torch.load(out / "step_2" / WEIGHTS, weights_only=True)
    assert [weights["cls.%d.weight" % i].shape[0] for i in range(4)] == [1, 7, 7, 6]
    for step in (1, 2):
        memory = json.load(open(out / ("step_%d" % step) / "memory.json"))
        assert len(memory["step_%d" % step]["memory_list"]) == 3
    assert "step_1" in json.load(open(out / "step_2" / "memory.json"))      # step 2 extends step 1's memory
    log = open(glob.glob(str(out / "step_2" / "*_log.txt"))[0]).read()
    for term in ("mbce", "kd", "dkd_pos", "dkd_neg", "ac"):
        assert re.search(r"\| .*\b%s [-0-9.e]+" % term, log), term
    # rerunning the task skips the finished steps
    code, stdout, _ = run_cli("tools/run_incremental.py", ["--incremental", TASK, "--out", str(out), "--iterations",
                                                           "12", "3", "3", "--lr", "0.01", "0.001", "--pos-weight", "2",
                                                           "1", "--backbone", "resnet18", "--dry-run"])
    assert code == 0 and stdout.count(": done") == 3


def test_eval_reports_old_new_all_and_hiou(task_run, voc, tmp_path):
    out, _ = task_run
    argv = ["--model", "dkd_deeplabv3", "--backbone", "resnet18", "--dataset", "voc", "--data", voc, "--pretrained",
            str(out / "step_2" / WEIGHTS), "--pipeline", "dkd", "--crop-size", "40", "40", "--incremental", TASK,
            "--step", "2", "--save-dir", str(tmp_path / "eval"), "--workers", "0", "--no-progress"]
    assert evaluate(argv) == 0
    result = json.load(open(tmp_path / "eval" / "results.json"))
    assert {"mIoU_old", "mIoU_new", "mIoU_all", "hIoU"} <= set(result) and len(result["per_class_IoU"]) == 21


def step1_argv(voc, out, teacher, *extra):
    return (flags(voc) + ["--kd-method", "dkd", "--incremental", TASK, "--step", "1", "--dataset", "voc",
                          "--student-model", "dkd_deeplabv3", "--student-backbone", "resnet18", "--teacher-model",
                          "dkd_deeplabv3", "--teacher-backbone", "resnet18", "--teacher-pretrained", teacher,
                          "--student-pretrained", teacher, "--freeze-bn", "--disable-dropout", "--weight-decay-only",
                          "cls.2.*", "--lr", "0.001", "--save-dir", str(out)] + list(extra))


@pytest.mark.slow      # ~30 s; resuming is exact for every method (tests/test_engine.py runs by default)
def test_killed_step_resumes_to_the_same_weights(task_run, voc, tmp_path):
    teacher = str(task_run[0] / "step_0" / WEIGHTS)
    assert train(step1_argv(voc, tmp_path / "full", teacher, "--max-iterations", "4", "--skip-val")) == 0
    cut = step1_argv(voc, tmp_path / "cut", teacher, "--max-iterations", "4", "--skip-val")
    assert train(cut + ["--stop-at-iteration", "2"]) == 0
    assert train(cut + ["--resume", "auto"]) == 0
    full, resumed = (student_weights(tmp_path / n, WEIGHTS) for n in ("full", "cut"))
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def test_bad_incremental_inputs_are_one_line_errors(task_run, voc, tmp_path):
    out = task_run[0]
    cases = [
        (step1_argv(voc, tmp_path / "a", str(tmp_path / "missing.pth"), "--max-iterations", "1"), "missing.pth"),
        # step 2's teacher given step 0's file: another step
        ([a if a not in ("1", "cls.2.*") else {"1": "2", "cls.2.*": "cls.3.*"}[a]
          for a in step1_argv(voc, tmp_path / "b", str(out / "step_0" / WEIGHTS), "--max-iterations", "1")], "step 0"),
        (step1_argv(voc, tmp_path / "c", str(out / "step_0" / WEIGHTS), "--incremental", "voc:19-7:overlap"), "19-7"),
        (step1_argv(voc, tmp_path / "d", str(out / "step_0" / WEIGHTS), "--incremental", "voc:25-1:overlap"), "25"),
        (step1_argv(voc, tmp_path / "e", str(out / "step_0" / WEIGHTS), "--incremental", "voc:7-7:sideways"), "overlap"),
    ]
    for argv, needle in cases:
        code, _, err = run_cli("train_kd.py", argv)
        lines = [l for l in err.strip().splitlines() if l.strip()]
        assert code != 0 and needle in lines[-1] and "Traceback" not in err, (needle, err[-1500:])
    assert not any(glob.glob(str(tmp_path / "*" / "*.pth")))


SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "train_scripts", "dkd", "*", "*.sh")))


def test_every_task_of_the_readme_has_both_scripts():
    names = {os.path.relpath(p, os.path.join(ROOT, "train_scripts", "dkd")) for p in SCRIPTS}
    tasks = ["voc/overlap_%s" % t for t in ("19-1", "15-5", "15-1", "10-1", "5-3")] + \
        ["voc/disjoint_%s" % t for t in ("19-1", "15-5", "15-1")] + ["ade20k/overlap_%s" % t for t in ("100-50", "100-10", "50-50")]
    assert names == {"%s_%s.sh" % (t, k) for t in tasks for k in ("dkd", "dkd-m")}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: os.path.relpath(p, os.path.join(ROOT, "train_scripts", "dkd")))
def test_task_script_steps_parse(path):
    import train_kd
    from tools.run_incremental import parse, step_argv
    text = open(path).read()
    command = text[text.index("tools/run_incremental.py") + len("tools/run_incremental.py"):]
    command = command.replace("\\\n", " ").replace('"$@"', "")
    for name, value in re.findall(r"^(\w+)=\$\{\w+:-(.*)\}$", text, re.M):
        command = command.replace('"$%s"' % name, value)
    command = re.sub(r'"\$\{(\w+):-([^}]*)\}"', r"\2", command)
    args = parse(shlex.split(command))
    assert "Published (DKD README" in text
    for step in range(len(args.iterations)):
        parsed = train_kd.parse_args(step_argv(args, step))
        assert parsed.kd_method == "dkd" and parsed.step == step and parsed.nesterov and parsed.head_lr_mult == 10
        assert parsed.freeze_bn == (step > 0) and (parsed.weight_decay_only is not None) == (step > 0)
        assert parsed.num_classes == 1 + sum(parsed.head_widths)


def test_incremental_splits_tool_prints_the_counts(voc, tmp_path):
    code, out, err = run_cli("tools/incremental_splits.py", ["--dataset", "voc", "--data", voc, "--task", "15-1",
                                                             "--cache", str(tmp_path / "cache")])
    assert code == 1, err          # synthetic data: the counts differ from the official files
    assert "step 5: classes 20-20" in out and "(official 548, DIFFERS)" in out
    assert len(list((tmp_path / "cache").glob("voc_overlap_15-1_train_step*.txt"))) == 6


def test_a_task_script_runs_end_to_end_shrunk(voc, tmp_path):
    """train_scripts/dkd/voc/overlap_15-5_dkd.sh on synthetic VOC (classes 2, 6, 7, 14, 15 | 19), shrunk."""
    import subprocess
    import sys
    env = dict(os.environ, OUT=str(tmp_path / "task"), DATA=voc, BACKBONE="resnet18", LAUNCHER="python", NPROC="1",
               PYTHON=sys.executable, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    extra = ["--max-iterations", "2", "--crop-size", "40", "40", "--batch-size", "2", "--workers", "0", "--no-progress"]
    proc = subprocess.run(["bash", os.path.join(ROOT, "train_scripts", "dkd", "voc", "overlap_15-5_dkd.sh")] + extra,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for step in (0, 1):
        assert (tmp_path / "task" / ("step_%d" % step) / "done").is_file()
    assert "hIoU" in json.load(open(tmp_path / "task" / "step_1" / "results.json"))["last"]
