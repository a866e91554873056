"""Every documented bad input of train_kd.py / eval.py: a one-line error, exit code != 0, nothing destroyed."""
import os

import pytest
import torch

from e2e_common import TINY, last_error_line, make_citys, run_cli, train

STUDENT = "deeplabv3_resnet18_citys"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_citys(str(tmp_path_factory.mktemp("citys_err")), num_train=2, num_val=1)


def base(data, save_dir):
    return TINY + ["--data", data, "--save-dir", str(save_dir), "--max-iterations", "1", "--skip-val"]


def expect_error(code, stderr, *words):
    assert code != 0
    line = last_error_line(stderr)
    assert "Traceback" not in stderr, stderr[-2000:]
    for w in words:
        assert w in line, line


def test_missing_data_root(tmp_path):
    code, _, err = run_cli("train_kd.py", TINY + ["--data", str(tmp_path / "nope"), "--save-dir", str(tmp_path / "r")])
    expect_error(code, err, "nope", "--data")


def test_unknown_kd_method(tmp_path):
    code, _, err = run_cli("train_kd.py", TINY + ["--kd-method", "magic", "--save-dir", str(tmp_path)])
    expect_error(code, err, "magic")


def test_batch_not_divisible_by_world_size(data, tmp_path):
    code, _, err = run_cli("train_kd.py", base(data, tmp_path) + ["--batch-size", "3"],
                           env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    expect_error(code, err, "--batch-size", "divisible")


def test_teacher_checkpoint_of_wrong_architecture(data, tmp_path):
    from models import get_segmentation_model
    wrong = tmp_path / "psp_teacher.pth"
    torch.save(get_segmentation_model("psp", "resnet18", num_class=19, aux=True).state_dict(), wrong)
    code, _, err = run_cli("train_kd.py", base(data, tmp_path / "run") + [
        "--kd-method", "kd", "--teacher-model", "deeplabv3", "--teacher-backbone", "resnet18",
        "--teacher-pretrained", str(wrong)])
    expect_error(code, err, "teacher", "psp_teacher.pth")


def test_missing_teacher_checkpoint_file(data, tmp_path):
    code, _, err = run_cli("train_kd.py", base(data, tmp_path) + [
        "--kd-method", "kd", "--teacher-pretrained", str(tmp_path / "absent.pth")])
    expect_error(code, err, "absent.pth")


def test_resume_file_from_another_model(data, tmp_path):
    run_a = tmp_path / "a"
    assert train(base(data, run_a) + ["--kd-method", "none"]) == 0
    resume = run_a / (STUDENT + "_resume.pth")
    before = resume.read_bytes()
    code, _, err = run_cli("train_kd.py", base(data, tmp_path / "b") + [
        "--kd-method", "none", "--student-model", "psp", "--resume", str(resume)])
    expect_error(code, err, "other settings", "--student-model")
    assert resume.read_bytes() == before


def test_existing_run_is_not_overwritten(data, tmp_path):
    assert train(base(data, tmp_path) + ["--kd-method", "none"]) == 0
    weights = (tmp_path / (STUDENT + ".pth")).read_bytes()
    code, _, err = run_cli("train_kd.py", base(data, tmp_path) + ["--kd-method", "none"])
    expect_error(code, err, "already holds a run", "--resume auto")
    assert (tmp_path / (STUDENT + ".pth")).read_bytes() == weights


def test_eval_missing_checkpoint(data, tmp_path):
    code, _, err = run_cli("eval.py", ["--dataset", "citys", "--data", data, "--pretrained", str(tmp_path / "x.pth")])
    expect_error(code, err, "x.pth")


def test_non_finite_loss_stops_naming_iteration_and_term(data, tmp_path, capsys):
    import losses
    from losses.base import DistillMethod
    from losses.registry import _REGISTRY, register

    @register("nan_at_2")
    class NanAtTwo(DistillMethod):
        num_teachers = 0

        @classmethod
        def from_args(cls, args, student_info, teacher_info):
            return cls()

        def forward(self, ctx):
            value = float("nan") if ctx.iteration >= 2 else 0.0
            return {"boom": ctx.student.logits.sum() * 0 + value}

    try:
        code = train(base(data, tmp_path) + ["--kd-method", "nan_at_2", "--max-iterations", "3",
                                             "--save-per-iters", "1"])
    finally:
        _REGISTRY.pop("nan_at_2")
    assert code == 1
    line = last_error_line(capsys.readouterr().err)
    assert "non-finite" in line and "iteration 2" in line and "'boom'" in line and "_resume.pth" in line
    state = torch.load(tmp_path / ("kd_" + STUDENT + "_resume.pth"), weights_only=True)
    assert state["iteration"] == 1          # the last good checkpoint is kept
    assert "nan_at_2" not in losses.available_methods()
