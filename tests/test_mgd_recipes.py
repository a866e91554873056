"""MGD's partitions as train scripts (train_scripts/mgd/): every script parses with the official
settings, and runs 2 iterations on a synthetic semi-supervised split, shrunk (random teachers, 40x40
crops, batch 2). A default subset covers each kind of script on both datasets; the rest runs with -m slow."""
import glob
import os
import re
import shlex

import pytest

from e2e_common import ROOT, train

SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "train_scripts", "mgd", "*", "*.sh")))
FAST = {"voc/mgd_r18_1-8.sh", "voc/cps_r101_1-16.sh", "cityscapes/mgd_mbv2_1-2.sh", "cityscapes/sup_r18_1-4.sh"}
FORMATS = {"voc": "voc", "cityscapes": "cityscapes"}


def rel(path):
    return os.path.relpath(path, os.path.join(ROOT, "train_scripts", "mgd"))


def script_argv(path):
    """The train_kd.py arguments of a script, its shell variables replaced by their defaults."""
    text = open(path).read()
    env = {"NPROC": re.search(r"NPROC=\$\{NPROC:-(\d+)\}", text).group(1)}
    for name, value in re.findall(r"^(\w+)=\$\{\w+:-(.*)\}$", text, re.M):
        env[name] = value
    for name, expr in re.findall(r"^(\w+)=\$\(\((.*)\)\)", text, re.M):
        env[name] = str(eval(expr.replace("NPROC", env["NPROC"]).replace("/", "//")))
    body = text[text.index("ARGS=(\n") + len("ARGS=(\n"):text.index("\n)\n")]
    for name, value in env.items():
        body = body.replace('"$%s"' % name, value)
    assert "$" not in body, body
    return shlex.split(body)


def test_every_partition_has_its_scripts():
    names = {rel(p) for p in SCRIPTS}
    for folder in FORMATS:
        for ratio in (16, 8, 4, 2):
            for kind in ("mgd_r18", "mgd_mbv2", "sup_r18", "sup_mbv2", "cps_r101", "cps_wrn"):
                assert "%s/%s_1-%d.sh" % (folder, kind, ratio) in names
    assert len(SCRIPTS) == 2 * 4 * 6


OFFICIAL = {  # (dataset, kind): (global batch, lr x GPUs = the official lr, iterations at 1/8)
    ("voc", "mgd_r18"): (8, 0.01, 39338), ("voc", "mgd_mbv2"): (8, 0.014, 39338),
    ("citys", "mgd_r18"): (16, 0.02, 22194), ("voc", "cps_r101"): (8, 0.01, 39338),
    ("voc", "cps_wrn"): (8, 0.004, 39338), ("citys", "cps_r101"): (8, 0.02, 44525)}


@pytest.mark.parametrize("path", SCRIPTS, ids=rel)
def test_mgd_script_settings(path):
    import train_kd
    args = train_kd.parse_args(script_argv(path))
    kind = os.path.basename(path).rsplit("_1-", 1)[0]
    ratio = int(path.rsplit("_1-", 1)[1][:-3])
    gpus = 4 if args.dataset == "voc" else 8
    assert args.pipeline == "cps" and args.val_mode == "slide" and args.val_miou == "present"
    assert args.weight_decay == pytest.approx(1e-4 * gpus) and args.no_decay_norm_bias
    assert args.train_list.endswith("train_aug_labeled_1-%d.txt" % ratio)
    assert (args.task_loss == "ohem") == (args.dataset == "citys")
    if args.dataset == "citys":    # 50000 pixels per image of an official GPU batch, NPROC = the official GPUs
        assert args.ohem_min_kept == 50000 * args.batch_size // gpus
    if kind.startswith("sup"):
        assert args.kd_method == "none" and args.unlabeled_list is None
    else:
        assert args.unlabeled_list.endswith("train_aug_unlabeled_1-%d.txt" % ratio)
    official = OFFICIAL.get((args.dataset, kind))
    if official and ratio == 8:
        batch, lr, iters = official
        assert (args.batch_size, args.max_iterations) == (batch, iters)
        assert args.lr * gpus == pytest.approx(lr)
    if kind.startswith("mgd"):
        assert args.kd_method == "mgd" and args.mgd_sem_images_per_gpu == args.batch_size // gpus
        assert args.teacher_backbone == "resnet101" and args.teacher2_backbone == "wide_resnet50_2"


@pytest.fixture(scope="module")
def semi_roots(tmp_path_factory):
    from datasets.synthetic import generate
    base = tmp_path_factory.mktemp("mgd_data")
    return {folder: generate(fmt, str(base / folder), num_train=8, num_val=1, size=(48, 64), seed=2, semi_split=4)
            for folder, fmt in FORMATS.items()}


def shrunk_argv(path, semi, save_dir):
    argv = script_argv(path) + [
        "--data", semi["root"], "--crop-size", "40", "40", "--batch-size", "2", "--max-iterations", "2",
        "--val-per-iters", "2", "--save-per-iters", "2", "--workers", "0", "--log-iter", "1", "--no-progress",
        "--student-pretrained-base", "None", "--save-dir", save_dir, "--val-crop-size", "40", "40",
        "--val-stride", "27", "27", "--train-list", semi["labeled_list"]]
    if "--unlabeled-list" in argv:
        argv += ["--unlabeled-list", semi["unlabeled_list"]]
    if "--teacher-pretrained" in argv:
        argv += ["--teacher-pretrained", "None", "--teacher2-pretrained", "None", "--allow-random-teacher"]
    if "ohem" in argv:
        argv += ["--ohem-min-kept", "1000"]
    return argv


def _params():
    return [pytest.param(p, id=rel(p), marks=() if rel(p) in FAST else (pytest.mark.slow,)) for p in SCRIPTS]


@pytest.mark.parametrize("path", _params())
def test_mgd_script_runs_two_iterations(path, semi_roots, tmp_path):
    import json
    assert train(shrunk_argv(path, semi_roots[rel(path).split("/")[0]], str(tmp_path / "run"))) == 0
    results = json.load(open(tmp_path / "run" / "results.json"))
    assert results["last"]["iteration"] == 2 and 0.0 <= results["last"]["mIoU"] <= 1.0
