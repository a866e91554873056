"""Every registered method trains a few iterations through the real train_kd.py on synthetic data."""
import os

import pytest
import torch

import losses
from e2e_common import TINY, assert_same_weights, make_citys, student_weights, train

STUDENT = "deeplabv3_resnet18_citys"
SMALL_CIRKD = ["--pixel-memory-size", "64", "--region-memory-size", "8", "--pixel-contrast-size", "64",
               "--region-contrast-size", "16"]
NO_ADV = ["--lambda-adv", "0", "--lambda-d", "0"]   # the discriminator needs >= 64x64 logits (512 crops)
# Extra flags per method for 128x128 crops (16x16 maps).
EXTRA = {"skd": NO_ADV, "ifvd": NO_ADV, "cwd": NO_ADV, "cirkd": SMALL_CIRKD, "kd+cwd": NO_ADV}
BOOKKEEPING = {"task", "task_aux", "total", "lr"}
TEACHER_FREE = {"tf_fd", "sad", "tf_kd", "tf_kd_reg", "none"}
SPECIAL = {"maskd", "maskd_tokens", "tf_kd_self",   # need files made by another run: own tests below
           "cps", "mgd",                          # semi-supervised streams: tests/test_mgd.py
           "dkd"}                                 # class-incremental steps: tests/test_dkd.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("methods")
    data = make_citys(str(base / "data"))
    teacher_dir = base / "teacher"
    assert train(TINY + ["--data", data, "--save-dir", str(teacher_dir), "--kd-method", "none",
                         "--max-iterations", "1", "--skip-val"]) == 0
    return data, str(teacher_dir / (STUDENT + ".pth"))


def run_method(setup, save_dir, method, *extra, iterations=2):
    data, teacher = setup
    argv = TINY + ["--data", data, "--save-dir", str(save_dir), "--kd-method", method, "--crop-size", "128", "128",
                   "--max-iterations", str(iterations), "--val-per-iters", str(iterations)]
    if method not in TEACHER_FREE:
        argv += ["--teacher-model", "deeplabv3", "--teacher-backbone", "resnet18", "--teacher-pretrained", teacher]
    return train(argv + EXTRA.get(method, []) + list(extra))


def log_text(save_dir):
    return open(next(iter(sorted(save_dir.glob("*_log.txt"))))).read()


def logged_terms(log: str, iteration: int = 1) -> set:
    """The names logged on the line of ``iteration`` ("iter 1/2 | task 2.9 kd 0.1 ... | it/s")."""
    line = next(l for l in log.splitlines() if "iter %d/" % iteration in l)
    fields = line.split(" | ")[1].split()
    return set(fields[0::2])


METHODS = sorted(set(losses.available_methods()) - SPECIAL) + ["kd+bpkd"]


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_end_to_end(setup, tmp_path, method):
    assert run_method(setup, tmp_path, method) == 0
    prefix = "" if method == "none" else "kd_"
    weights = student_weights(tmp_path, prefix + STUDENT + "_best_model.pth")
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
    log = log_text(tmp_path)
    assert "val @ 2" in log
    own_terms = logged_terms(log) - BOOKKEEPING
    if method == "none":
        assert not own_terms
    else:   # a method that silently returned no terms would train plain CE
        assert own_terms, "--kd-method %s logged no terms of its own" % method
        if "+" in method:
            assert len(own_terms) >= 2 and "kd" in own_terms, own_terms


def test_combined_methods_with_the_same_term_fail(setup, tmp_path):
    """kd+cwd: both return 'kd'; summing it twice silently would double its weight."""
    from e2e_common import run_cli
    data, teacher = setup
    argv = TINY + ["--data", data, "--save-dir", str(tmp_path), "--kd-method", "kd+cwd", "--crop-size", "128", "128",
                   "--max-iterations", "1", "--skip-val", "--teacher-model", "deeplabv3", "--teacher-backbone",
                   "resnet18", "--teacher-pretrained", teacher] + NO_ADV
    code, _, err = run_cli("train_kd.py", argv)
    assert code == 1 and "both return the term 'kd'" in err.strip().splitlines()[-1]


def test_every_method_is_covered():
    assert set(losses.available_methods()) <= set(METHODS) | SPECIAL


def test_skd_discriminator_at_full_logit_size(setup, tmp_path):
    """512x512 crops give 64x64 logits: the adversarial term and the D step run."""
    data, teacher = setup
    argv = TINY + ["--data", data, "--save-dir", str(tmp_path), "--kd-method", "skd", "--crop-size", "512", "512",
                   "--max-iterations", "1", "--skip-val", "--teacher-model", "deeplabv3", "--teacher-backbone",
                   "resnet18", "--teacher-pretrained", teacher]
    assert train(argv) == 0
    log = log_text(tmp_path)
    assert "adv_G" in log and "adv_D" in log


def test_cirkd_resume_restores_queues(setup, tmp_path):
    args = ["--save-per-iters", "1", "--skip-val"]
    assert run_method(setup, tmp_path / "full", "cirkd", *args, iterations=3) == 0
    assert run_method(setup, tmp_path / "cut", "cirkd", *args, "--stop-at-iteration", "2", iterations=3) == 0
    state = torch.load(tmp_path / "cut" / ("kd_" + STUDENT + "_resume.pth"), weights_only=True)
    queues = {k: v for k, v in state["method"].items() if "queue" in k}
    assert queues and any(float(v.float().abs().sum()) > 0 for v in queues.values())
    assert run_method(setup, tmp_path / "cut", "cirkd", *args, "--resume", "auto", iterations=3) == 0
    assert_same_weights(student_weights(tmp_path / "full", "kd_" + STUDENT + ".pth"),
                        student_weights(tmp_path / "cut", "kd_" + STUDENT + ".pth"))
    full = torch.load(tmp_path / "full" / ("kd_" + STUDENT + "_resume.pth"), weights_only=True)["method"]
    cut = torch.load(tmp_path / "cut" / ("kd_" + STUDENT + "_resume.pth"), weights_only=True)["method"]
    for k in full:
        assert torch.equal(full[k], cut[k]), k


def test_maskd_two_stages(setup, tmp_path):
    data, teacher = setup
    stage1 = tmp_path / "stage1"
    argv = TINY + ["--data", data, "--save-dir", str(stage1), "--kd-method", "maskd_tokens", "--crop-size", "128",
                   "128", "--max-iterations", "2", "--teacher-model", "deeplabv3", "--teacher-backbone", "resnet18",
                   "--teacher-pretrained", teacher, "--lr", "0.1", "--weight-decay", "1e-3"]
    assert train(argv) == 0
    tokens = stage1 / "maskd_tokens_deeplabv3_resnet18_citys.pth"
    assert tokens.is_file()
    assert torch.load(tokens, weights_only=True)["mask_token"].shape == (8, 19)
    assert run_method(setup, tmp_path / "stage2", "maskd", "--pretrained-mask", str(tokens)) == 0
    assert (tmp_path / "stage2" / ("kd_" + STUDENT + "_best_model.pth")).is_file()


def test_tf_kd_self_uses_a_trained_student_as_teacher(setup, tmp_path):
    data, teacher = setup   # the "teacher" checkpoint is a DeepLabV3-ResNet18: the student's own architecture
    argv = TINY + ["--data", data, "--save-dir", str(tmp_path), "--kd-method", "tf_kd_self", "--crop-size", "128",
                   "128", "--max-iterations", "2", "--skip-val", "--teacher-pretrained", teacher]
    assert train(argv) == 0
    log = log_text(tmp_path)
    assert "tf_kd" in log and "network: teacher deeplabv3/resnet18" in log


def test_teacher_free_methods_build_no_teacher(setup, tmp_path):
    assert run_method(setup, tmp_path, "tf_fd") == 0
    log = log_text(tmp_path)
    assert "network: student" in log and "network: teacher" not in log
