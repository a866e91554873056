"""BPKD's tables as train scripts (train_scripts/bpkd/): every script parses with the table's settings,
and runs 2 iterations + a validation on synthetic data, shrunk (random teacher, small crops, batch 2).

A default subset covers every student family with BPKD, every baseline method, every dataset, a
slide-validated row and a teacher script; the rest run with ``-m slow``.
"""
import glob
import json
import os
import re

import pytest

from e2e_common import ROOT, train
from test_train_scripts import train_kd_argv

SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "train_scripts", "bpkd", "*", "*.sh")))
FAST = {"cityscapes/pspnet_r18_bpkd.sh", "cityscapes/hrnet_w18s_bpkd.sh", "cityscapes/deeplabv3plus_mbv2_bpkd.sh",
        "cityscapes/isanet_r18_bpkd.sh", "ade20k/pspnet_r18_skd.sh", "ade20k/isanet_r18_cwd.sh",
        "pascal_context/pspnet_r18_ifvd.sh", "pascal_context/deeplabv3plus_mbv2_cirkd.sh",
        "pascal_context/hrnet_w18s_none.sh", "ade20k/pspnet_r101_teacher.sh"}
FOLDER_TO_DATASET = {"cityscapes": "cityscapes", "ade20k": "ade20k", "pascal_context": "pascal_context"}


def rel(path):
    return os.path.relpath(path, os.path.join(ROOT, "train_scripts", "bpkd"))


def test_every_row_of_the_three_tables_has_a_script():
    names = {rel(p) for p in SCRIPTS}
    for folder in FOLDER_TO_DATASET:
        for student in ("pspnet_r18", "hrnet_w18s", "deeplabv3plus_mbv2", "isanet_r18"):
            for method in ("none", "skd", "ifvd", "cirkd", "cwd", "bpkd"):
                assert "%s/%s_%s.sh" % (folder, student, method) in names
        for teacher in ("pspnet_r101", "hrnet_w48", "deeplabv3plus_r101", "isanet_r101"):
            assert "%s/%s_teacher.sh" % (folder, teacher) in names
    assert len(SCRIPTS) == 3 * 4 * 7


@pytest.mark.parametrize("path", SCRIPTS, ids=[rel(p) for p in SCRIPTS])
def test_bpkd_script_settings(path):
    import train_kd
    args = train_kd.parse_args(train_kd_argv(path))
    text = open(path).read()
    pascal = args.dataset == "pascal_context"
    assert args.pipeline == "mmseg" and args.lr_min == pytest.approx(1e-4) and args.aux_weight == pytest.approx(0.4)
    assert args.lr == pytest.approx(0.004 if pascal else 0.01)
    assert args.weight_decay == pytest.approx(1e-4 if pascal else 5e-4)
    assert args.batch_size == (16 if pascal else 8)
    if path.endswith("_teacher.sh"):
        assert args.kd_method == "none" and "Released file" in text
        return
    assert args.max_iterations == 80000
    assert tuple(args.crop_size) == {"citys": (512, 1024), "ade20k": (512, 512), "pascal_context": (480, 480)}[args.dataset]
    published = re.search(r"Published \(BPKD README, val, single scale\): mIoU (\d+\.\d\d)", text)
    assert published, "the published mIoU is missing from the header"
    if args.kd_method == "bpkd":
        assert "mAcc" in text and args.bpkd_lambda_edge == 50 and args.bpkd_lambda_body == 20
    if args.kd_method != "none":
        assert args.teacher_pretrained.startswith("pretrained_ckpt/") and args.teacher_model == args.student_model
    if args.kd_method in ("skd", "ifvd") and min(args.crop_size) // 8 < 64 and args.student_backbone.endswith("v1c"):
        assert args.lambda_adv == 0      # 60x60 logits: the discriminator needs 64x64


@pytest.fixture(scope="module")
def synthetic_roots(tmp_path_factory):
    from datasets.synthetic import generate
    base = tmp_path_factory.mktemp("bpkd_data")
    return {folder: generate(fmt, str(base / folder), num_train=2, num_val=1, size=(64, 96), seed=1)["root"]
            for folder, fmt in FOLDER_TO_DATASET.items()}


def shrunk_argv(path, data_root, save_dir):
    argv = train_kd_argv(path) + [
        "--data", data_root, "--crop-size", "48", "48", "--img-scale", "96", "64", "--batch-size", "2",
        "--max-iterations", "2", "--val-per-iters", "2", "--save-per-iters", "2", "--workers", "0",
        "--log-iter", "1", "--no-progress", "--student-pretrained-base", "None", "--save-dir", save_dir]
    if "--teacher-pretrained" in argv:
        argv += ["--teacher-pretrained", "None", "--allow-random-teacher"]
    method = argv[argv.index("--kd-method") + 1]
    if method in ("skd", "ifvd"):       # 48x48 crops give 6x6 logits; the discriminator needs 64x64
        argv += ["--lambda-adv", "0", "--lambda-d", "0"]
    if method == "cirkd":               # small memory banks (the default 20000 pixels x classes dominates)
        argv += ["--pixel-memory-size", "200", "--region-memory-size", "20", "--pixel-contrast-size", "64",
                 "--region-contrast-size", "16"]
    if "--val-mode" in argv:
        argv += ["--val-crop-size", "40", "40", "--val-stride", "24", "24"]
    return argv


def _params():
    out = []
    for path in SCRIPTS:
        marks = () if rel(path) in FAST else (pytest.mark.slow,)
        out.append(pytest.param(path, id=rel(path), marks=marks))
    return out


@pytest.mark.parametrize("path", _params())
def test_bpkd_script_runs_two_iterations(path, synthetic_roots, tmp_path):
    folder = rel(path).split("/")[0]
    save_dir = str(tmp_path / "run")
    assert train(shrunk_argv(path, synthetic_roots[folder], save_dir)) == 0
    with open(os.path.join(save_dir, "results.json")) as handle:
        results = json.load(handle)
    assert results["last"]["iteration"] == 2 and 0.0 <= results["last"]["mIoU"] <= 1.0 and "mAcc" in results["last"]
    log = open(glob.glob(os.path.join(save_dir, "*_log.txt"))[0]).read()
    method = re.search(r"--kd-method (\w+)", open(path).read()).group(1)
    if method == "bpkd":
        assert re.search(r"iter 2/2 \| .*edge [0-9.]+ body [0-9.]+", log), "BPKD's terms are not in the log"
