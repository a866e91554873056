"""Faults a researcher meets on a real cluster: each is a one-line error (non-zero exit) or a correct
recovery, with nothing lost or overwritten. The table in tests/README.md lists them."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from e2e_common import (ROOT, TINY, evaluate, free_port, last_error_line, make_citys, run_cli, student_weights,
                        train)

STUDENT = "deeplabv3_resnet18_citys"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_citys(str(tmp_path_factory.mktemp("faults") / "data"))


def run_args(data, save_dir, *extra):
    return TINY + ["--data", data, "--save-dir", str(save_dir), "--max-iterations", "1", "--skip-val"] + list(extra)


def one_line(code, stderr, *words):
    assert code != 0
    assert "Traceback" not in stderr, stderr[-2000:]
    line = last_error_line(stderr)
    for word in words:
        assert word in line, line
    return line


def all_pth_finite(folder):
    files = glob.glob(os.path.join(str(folder), "*.pth"))
    for path in files:
        state = torch.load(path, map_location="cpu", weights_only=True)
        flat = state.get("student", state) if isinstance(state, dict) else state
        for key, value in flat.items():
            if torch.is_tensor(value) and value.is_floating_point():
                assert torch.isfinite(value).all(), (path, key)
    return files


@pytest.fixture
def nan_methods():
    from losses.base import DistillMethod
    from losses.registry import _REGISTRY, register

    class NanGradAt(DistillMethod):
        """A finite loss (0) whose gradient is NaN from iteration ``at`` on: sqrt'(0) * 0."""
        num_teachers = 0
        at = 2

        @classmethod
        def from_args(cls, args, student_info, teacher_info):
            return cls()

        def forward(self, ctx):
            if ctx.iteration < self.at:
                return {"probe": ctx.student.logits.sum() * 0.0}
            return {"probe": torch.sqrt(ctx.student.logits.sum() * 0.0)}

    class NanLossAtTwo(NanGradAt):
        def forward(self, ctx):
            value = float("nan") if ctx.iteration == 2 else 0.0
            return {"probe": ctx.student.logits.sum() * 0.0 + value}

    register("_nan_grad")(NanGradAt)
    register("_nan_loss_at_2")(NanLossAtTwo)
    yield
    _REGISTRY.pop("_nan_grad", None)
    _REGISTRY.pop("_nan_loss_at_2", None)


# ---------------------------------------------------------------- non-finite numbers
def test_nan_gradient_with_finite_loss_never_reaches_the_weights(data, tmp_path, nan_methods, capsys):
    code = train(run_args(data, tmp_path, "--kd-method", "_nan_grad", "--max-iterations", "3", "--save-per-iters", "1"))
    line = one_line(code, capsys.readouterr().err, "non-finite", "iteration 2", "gradients", "_resume.pth")
    assert "weights are untouched" in line
    assert all_pth_finite(tmp_path)
    assert torch.load(tmp_path / ("kd_" + STUDENT + "_resume.pth"), weights_only=True)["iteration"] == 1


def test_lr_nan_and_zero_are_refused(capsys):
    import train_kd
    for value in ("nan", "0", "-1", "inf"):
        with pytest.raises(SystemExit) as info:
            train_kd.parse_args(["--lr", value])
        assert info.value.code == 2
        assert "--lr must be a finite number > 0" in capsys.readouterr().err.strip().splitlines()[-1]


def test_huge_lr_every_checkpoint_on_disk_is_finite(data, tmp_path, capsys):
    code = train(run_args(data, tmp_path, "--kd-method", "none", "--max-iterations", "4", "--save-per-iters", "1",
                          "--lr", "1e38"))
    one_line(code, capsys.readouterr().err, "non-finite")
    all_pth_finite(tmp_path)


def test_skip_nonfinite_steps_and_count_them(data, tmp_path, nan_methods):
    assert train(run_args(data, tmp_path, "--kd-method", "_nan_loss_at_2", "--max-iterations", "3",
                          "--skip-nonfinite", "1")) == 0
    log = open(next(tmp_path.glob("*_log.txt"))).read()
    assert "non-finite step at iteration 2" in log and "skipped (1 in a row, 1 in all" in log
    assert all_pth_finite(tmp_path)


# ---------------------------------------------------------------- damaged data
@pytest.fixture
def voc(tmp_path):
    from datasets.synthetic import generate
    root = str(tmp_path / "voc")
    generate("voc", root, num_train=4, num_val=2, size=(96, 128), seed=0, workers=1)
    return root


def truncate(path, fraction=0.6):
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[:int(len(data) * fraction)])


def voc_args(root, save_dir, *extra):
    return ["--dataset", "voc", "--data", root, "--crop-size", "64", "64", "--batch-size", "2", "--workers", "0",
            "--no-progress", "--max-iterations", "2", "--kd-method", "none", "--save-dir", str(save_dir)] + list(extra)


def test_truncated_jpeg_is_refused_skipped_and_reported(voc, tmp_path, capsys):
    from datasets import build_dataset
    jpeg = sorted(glob.glob(os.path.join(voc, "JPEGImages", "*.jpg")))[0]
    truncate(jpeg)
    code = train(voc_args(voc, tmp_path / "refused", "--skip-val"))
    one_line(code, capsys.readouterr().err, os.path.basename(jpeg), "truncated", "--on-bad-sample skip")
    assert not glob.glob(str(tmp_path / "refused" / "*.pth"))
    # skipped and counted while training
    assert train(voc_args(voc, tmp_path / "skipped", "--on-bad-sample", "skip", "--log-iter", "1")) == 0
    log = open(next((tmp_path / "skipped").glob("*_log.txt"))).read()
    assert "will be skipped" in log
    # the loader itself refuses the file at read time too (a file damaged after start-up)
    dataset = build_dataset("voc", voc, split="train", mode="train", crop_size=(64, 64))
    index = [s.image for s in dataset.samples].index(jpeg)
    with pytest.raises(Exception, match="JPEG end marker"):
        dataset[(index, 0)]
    # and tools/check_dataset.py reports it
    code, out, _ = run_cli("tools/check_dataset.py", ["voc", voc])
    assert code == 1 and os.path.basename(jpeg) in out and "truncated" in out


def test_corrupt_validation_image_is_found_before_training(data, tmp_path, capsys):
    import shutil
    copy = str(tmp_path / "data")
    shutil.copytree(data, copy)
    val_image = sorted(glob.glob(os.path.join(copy, "leftImg8bit", "val", "*", "*.png")))[0]
    truncate(val_image)
    start = time.time()
    code = train(TINY + ["--data", copy, "--save-dir", str(tmp_path / "run"), "--max-iterations", "50",
                         "--kd-method", "none"])
    one_line(code, capsys.readouterr().err, "validation", os.path.basename(val_image))
    assert time.time() - start < 30 and not glob.glob(str(tmp_path / "run" / "*.pth"))
    # --on-bad-sample skip: validation leaves it out and the run finishes
    assert train(TINY + ["--data", copy, "--save-dir", str(tmp_path / "skip"), "--max-iterations", "1",
                         "--kd-method", "none", "--on-bad-sample", "skip"]) == 0


def test_training_data_error_during_the_run_is_one_line(data, tmp_path):
    """A file that breaks after start-up (here: --check-data off) still ends in one line, also from workers."""
    import shutil
    copy = str(tmp_path / "data")
    shutil.copytree(data, copy)
    for label in glob.glob(os.path.join(copy, "gtFine", "train", "*", "*_labelIds.png")):
        with open(label, "wb") as handle:
            handle.write(b"garbage")
    code, _, err = run_cli("train_kd.py", run_args(copy, tmp_path / "run", "--kd-method", "none", "--check-data",
                                                   "off", "--workers", "1"))
    one_line(code, err, "training data", "label")


def test_unwritable_save_dir_is_found_before_training(data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli("train_kd.py", run_args(data, blocker / "run", "--kd-method", "none"))
    one_line(code, err, "--save-dir", "cannot be written")


# ---------------------------------------------------------------- checkpoints and files
def test_disk_full_on_save_is_one_line_and_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch, capsys):
    import utils.checkpoint as checkpoint
    args = run_args(data, tmp_path, "--kd-method", "none", "--max-iterations", "3", "--save-per-iters", "1")
    real_save, calls = torch.save, []

    def full_disk(obj, f, *a, **k):
        calls.append(1)
        if len(calls) > 2:      # iteration 1 writes two files; the third write fails
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    code = train(args)
    line = one_line(code, capsys.readouterr().err, "No space left on device", "intact")
    assert STUDENT in line
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert torch.load(tmp_path / (STUDENT + "_resume.pth"), weights_only=True)["iteration"] == 1
    assert not glob.glob(str(tmp_path / ".tmp_*"))


def test_stale_temp_files_are_removed_at_start(data, tmp_path):
    args = run_args(data, tmp_path, "--kd-method", "none", "--max-iterations", "2", "--save-per-iters", "1")
    assert train(args + ["--stop-at-iteration", "1"]) == 0
    stale = tmp_path / ".tmp_killed_write.pth"
    stale.write_bytes(b"half a checkpoint")
    assert train(args + ["--resume", "auto"]) == 0
    assert not stale.exists()


def test_text_file_as_checkpoint_names_the_file(data, tmp_path):
    bad = tmp_path / "teacher.pth"
    bad.write_text("hello\n")
    code, _, err = run_cli("train_kd.py", run_args(data, tmp_path / "run", "--kd-method", "kd", "--teacher-backbone",
                                                   "resnet18", "--teacher-pretrained", str(bad)))
    one_line(code, err, "teacher.pth", "not a PyTorch weight file", "6 bytes")
    code, _, err = run_cli("eval.py", ["--pretrained", str(bad), "--data", data, "--save-dir", str(tmp_path / "eval")])
    one_line(code, err, "teacher.pth", "not a PyTorch weight file", "6 bytes")


def test_afdcd_crop_too_small_fails_at_start_up(data, tmp_path):
    code, _, err = run_cli("train_kd.py", run_args(data, tmp_path / "run", "--kd-method", "af_dcd",
                                                   "--allow-random-teacher", "--teacher-backbone", "resnet18"))
    one_line(code, err, "af_dcd", "--crop-size 64x64", "--patch-size 4 4")


def test_resume_refuses_changed_schedule_unless_overridden(data, tmp_path, capsys):
    args = run_args(data, tmp_path, "--kd-method", "none", "--max-iterations", "3", "--save-per-iters", "1")
    assert train(args + ["--stop-at-iteration", "1"]) == 0
    changed = [a if a != "3" else "4" for a in args]
    capsys.readouterr()
    assert train(changed + ["--resume", "auto"]) == 1
    one_line(1, capsys.readouterr().err, "--max-iterations: file 3 vs now 4", "--resume-override")
    batch4 = [a if a != "2" else "4" for a in args]  # TINY's --batch-size 2
    assert train(batch4 + ["--resume", "auto"]) == 1
    assert "--batch-size: file 2 vs now 4" in last_error_line(capsys.readouterr().err)
    assert train(changed + ["--resume", "auto", "--resume-override"]) == 0


def test_train_script_checks_its_files_before_launching(data):
    env = dict(os.environ, DATA=data, PYTHON=sys.executable, PYTHONPATH=ROOT)
    proc = subprocess.run(["bash", os.path.join(ROOT, "train_scripts", "cityscapes", "deeplabv3_r18_kd.sh")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    one_line(proc.returncode, proc.stderr, "pretrained_ckpt/", "does not exist")
    assert "torchrun" not in proc.stderr and "ChildFailedError" not in proc.stderr


# ---------------------------------------------------------------- eval.py
def test_eval_never_overwrites_and_checks_its_flags(data, tmp_path):
    assert train(run_args(data, tmp_path / "run", "--kd-method", "none")) == 0
    ckpt = str(tmp_path / "run" / (STUDENT + ".pth"))
    base = ["--model", "deeplabv3", "--backbone", "resnet18", "--dataset", "citys", "--data", data,
            "--pretrained", ckpt, "--save-dir", str(tmp_path / "eval"), "--no-progress", "--workers", "0"]
    assert evaluate(base) == 0
    first = (tmp_path / "eval" / "results.json").read_text()
    code, _, err = run_cli("eval.py", base)
    one_line(code, err, "results.json", "--overwrite")
    assert (tmp_path / "eval" / "results.json").read_text() == first
    assert evaluate(base + ["--overwrite"]) == 0 and json.loads((tmp_path / "eval" / "results.json").read_text())
    for bad in (["--scales", "0"], ["--mode", "slide", "--stride", "0", "0"], ["--mode", "slide", "--crop-size", "0", "8"]):
        code, _, err = run_cli("eval.py", [a if a != str(tmp_path / "eval") else str(tmp_path / "e2") for a in base] + bad)
        one_line(code, err, bad[-3] if bad[0] == "--mode" else "--scales")


# ---------------------------------------------------------------- a stalled process
def _children(pid):
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.split("/")[2]))
        except (OSError, ValueError, IndexError):
            pass
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker processes through /proc")
def test_stalled_rank_ends_the_job_within_the_timeout(data, tmp_path):
    timeout_s = 8
    save = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "train_kd.py"] + TINY + ["--data", data, "--save-dir", str(save), "--max-iterations", "500", "--skip-val",
                                    "--kd-method", "none", "--dist-timeout", str(timeout_s), "--device", "cpu"]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped = None
    try:
        deadline = time.time() + 180
        while time.time() < deadline and stopped is None:
            logs = glob.glob(str(save / "*_log.txt"))
            if logs and "iter 2/" in open(logs[0]).read():
                for child in _children(proc.pid):
                    if b"LOCAL_RANK=1" in open("/proc/%d/environ" % child, "rb").read().split(b"\0"):
                        os.kill(child, signal.SIGSTOP)
                        stopped = child
            time.sleep(0.2)
        assert stopped is not None, "the run never reached iteration 2"
        stop_time = time.time()
        _, err = proc.communicate(timeout=timeout_s + 60)
        assert time.time() - stop_time <= timeout_s + 60
        assert proc.returncode != 0
        ours = [l for l in err.splitlines() if l.startswith("error: ")]
        assert ours and "did not answer within --dist-timeout 8 s" in ours[0], err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        if stopped is not None:
            try:
                os.kill(stopped, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_unknown_flag_model_and_dataset_are_one_line(data, tmp_path, capsys):
    import train_kd
    for argv, words in ((["--no-such-flag"], "unrecognized arguments"), (["--dataset", "mars"], "unknown dataset")):
        with pytest.raises(SystemExit) as info:
            train_kd.parse_args(argv)
        assert info.value.code == 2 and words in capsys.readouterr().err.strip().splitlines()[-1]
    code = train(run_args(data, tmp_path, "--kd-method", "none", "--student-model", "nope"))
    one_line(code, capsys.readouterr().err, "unknown segmentation model 'nope'")
