"""The engine's contract through the real train_kd.py CLI: named streams, two teachers of different
architectures, per-network input adapters, lr multipliers, evaluators and declared-missing keys."""
import json
import os

import pytest
import torch

from e2e_common import TINY, assert_same_weights, last_error_line, make_citys, student_weights, train
from engine_plugins import registered

STUDENT = "deeplabv3_resnet18_citys"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("engine")
    root = make_citys(str(base / "data"), num_train=4, num_val=2)
    # an "unlabeled" list: the training images without their labels (label column deliberately wrong)
    with open(os.path.join(root, "unlabeled.lst"), "w") as out:
        for line in open(os.path.join(root, "train.lst")):
            image = line.split()[0]
            out.write("%s\tno/such/label.png\n" % image)
    return root


@pytest.fixture
def plugins():
    with registered() as record:
        yield record


def save_model(path, model, backbone, **kwargs):
    from models import get_segmentation_model
    torch.manual_seed(1)
    net = get_segmentation_model(model, backbone, num_class=19, **kwargs)
    torch.save(net.state_dict(), path)
    return str(path)


def two_teacher_args(data, tmp_path, save_dir, *extra):
    teacher = save_model(tmp_path / "t1.pth", "deeplabv3_rgb", "resnet18", aux=False)
    teacher2 = save_model(tmp_path / "t2.pth", "psp", "resnet18", aux=False, head_width=64)
    return TINY + ["--data", data, "--save-dir", str(save_dir), "--kd-method", "_two_streams",
                   "--unlabeled-list", os.path.join(data, "unlabeled.lst"), "--unlabeled-batch-size", "4",
                   "--allow-labeled-in-unlabeled",
                   "--teacher-model", "deeplabv3_rgb", "--teacher-backbone", "resnet18", "--no-teacher-aux",
                   "--teacher-pretrained", teacher, "--teacher2-model", "psp", "--teacher2-backbone", "resnet18",
                   "--teacher2-head-width", "64", "--no-teacher2-aux", "--teacher2-pretrained", teacher2,
                   "--skip-val"] + list(extra)


def test_two_streams_two_teachers_kill_and_resume(data, tmp_path, plugins):
    args = ["--max-iterations", "4", "--save-per-iters", "2"]
    assert train(two_teacher_args(data, tmp_path, tmp_path / "full", *args)) == 0
    # every teacher's channels reach the method, each with its own head width and aux head
    infos = plugins["teacher_infos"][0]
    assert [i["head_feat"] for i in infos] == [128, 64] and all("aux_logits" not in i for i in infos)
    assert all(plugins["unlabeled_labels"]) and plugins["hooks"] == ["before_train", "after_train"]
    log = open(next((tmp_path / "full").glob("*_log.txt"))).read()
    assert "kd_unlabeled" in log and "streams ['labeled', 'unlabeled']" in log
    assert "teacher2 psp/resnet18 (19 classes, aux off, head 64" in log
    assert train(two_teacher_args(data, tmp_path, tmp_path / "cut", *args, "--stop-at-iteration", "2")) == 0
    assert plugins["hooks"][-1] == "before_train"          # a killed run does not run after_train
    assert train(two_teacher_args(data, tmp_path, tmp_path / "cut", *args, "--resume", "auto")) == 0
    name = "kd_" + STUDENT + ".pth"
    assert_same_weights(student_weights(tmp_path / "full", name), student_weights(tmp_path / "cut", name))
    full = torch.load(tmp_path / "full" / ("kd_" + STUDENT + "_resume.pth"), weights_only=True)["method"]
    cut = torch.load(tmp_path / "cut" / ("kd_" + STUDENT + "_resume.pth"), weights_only=True)["method"]
    assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)


def test_each_network_gets_its_own_input(data, tmp_path, plugins):
    """CIRKD student: the pipeline's BGR-minus-mean tensor; mmseg-style teacher: RGB (x - mean) / std."""
    assert train(two_teacher_args(data, tmp_path, tmp_path / "run", "--max-iterations", "1")) == 0
    pipeline = plugins["pipeline_images"][0]
    student_in, teacher_in = plugins["student_input"][0], plugins["teacher_input"][0]
    assert torch.equal(student_in, pipeline)
    bgr = pipeline.double() + torch.tensor([104.00698793, 116.66876762, 122.67891434]).view(1, 3, 1, 1).double()
    rgb = bgr[:, [2, 1, 0]]
    expected = (rgb - torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)) / \
        torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    assert torch.allclose(teacher_in.double(), expected, atol=1e-4)
    # pixel values 0..255 land in the usual ImageNet-normalised range
    assert -2.2 < float(teacher_in.min()) and float(teacher_in.max()) < 2.7


def test_lr_multipliers_follow_the_schedule(data, tmp_path, plugins):
    from engine.optim import poly_lr
    argv = two_teacher_args(data, tmp_path, tmp_path / "run", "--max-iterations", "4", "--lr", "0.01",
                            "--head-lr-mult", "10", "--warmup-iters", "2", "--warmup-factor", "0.1",
                            "--no-decay-norm-bias", "--nesterov")
    assert train(argv) == 0
    expected_base = {1: 0.01 * 0.1, 2: 0.01 * (0.1 + 0.9 * 0.5), 3: poly_lr(0.01, 3, 4, 0.9), 4: poly_lr(0.01, 4, 4, 0.9)}
    for iteration, lrs in plugins["lrs"]:
        base = expected_base[iteration]
        assert lrs["backbone"] == pytest.approx(base) and lrs["backbone_no_decay"] == pytest.approx(base)
        assert lrs["head"] == pytest.approx(10 * base) and lrs["head_no_decay"] == pytest.approx(10 * base)
        assert lrs["method"] == pytest.approx(base)
    assert [i for i, _ in plugins["lrs"]] == [1, 2, 3, 4]


def test_evaluator_picks_the_best_by_its_key(data, tmp_path, plugins):
    common = TINY + ["--data", data, "--kd-method", "_scripted_eval", "--max-iterations", "3", "--val-per-iters", "1"]
    assert train(common + ["--save-dir", str(tmp_path / "run")]) == 0
    result = json.load(open(tmp_path / "run" / "results.json"))
    assert result["best_key"] == "score" and result["best"]["iteration"] == 2 and result["best_score"] == 0.9
    assert result["last"]["iteration"] == 3 and result["last"]["score"] == 0.7
    assert result["best"]["pixels"] > 0 and result["last"]["per_image"] == [1.0, 2.0]
    assert [h["score"] for h in result["history"]] == [0.5, 0.9, 0.7]
    # the best checkpoint holds the weights of iteration 2
    assert train(common + ["--save-dir", str(tmp_path / "two"), "--stop-at-iteration", "2"]) == 0
    assert_same_weights(student_weights(tmp_path / "run", "kd_" + STUDENT + "_best_model.pth"),
                        student_weights(tmp_path / "two", "kd_" + STUDENT + ".pth"))
    log = open(next((tmp_path / "run").glob("*_log.txt"))).read()
    assert "val @ 2: score 0.9000 pixels" in log and "best score 0.9000, new best" in log


def test_declared_missing_classifier_loads_and_other_keys_do_not(data, tmp_path, plugins, capsys):
    from models import get_segmentation_model
    state = get_segmentation_model("deeplabv3", "resnet18", num_class=19, aux=True).state_dict()
    no_classifier = {k: v for k, v in state.items() if not k.startswith("head.block.4.")}
    torch.save(no_classifier, tmp_path / "no_cls.pth")
    common = TINY + ["--data", data, "--kd-method", "_new_classifier", "--max-iterations", "1", "--skip-val",
                     "--lr", "1e-12"]
    assert train(common + ["--save-dir", str(tmp_path / "ok"), "--student-pretrained", str(tmp_path / "no_cls.pth")]) == 0
    assert plugins["initialised"] == [["head.block.4.bias", "head.block.4.weight"]]
    saved = student_weights(tmp_path / "ok", "kd_" + STUDENT + ".pth")
    assert torch.allclose(saved["head.block.4.weight"], torch.full_like(saved["head.block.4.weight"], 0.25), atol=1e-6)
    assert torch.allclose(saved["head.aspp.b0.0.weight"], state["head.aspp.b0.0.weight"], atol=1e-6)
    # one more key missing: still a one-line error naming it
    broken = dict(no_classifier)
    broken.pop("head.aspp.b0.0.weight")
    torch.save(broken, tmp_path / "broken.pth")
    capsys.readouterr()
    assert train(common + ["--save-dir", str(tmp_path / "bad"), "--student-pretrained", str(tmp_path / "broken.pth")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing head.aspp.b0.0.weight" in last_error_line(err)
    # without the method's declaration the classifier-less file is refused as before
    assert train(TINY + ["--data", data, "--kd-method", "none", "--max-iterations", "1", "--skip-val",
                         "--save-dir", str(tmp_path / "strict"), "--student-pretrained",
                         str(tmp_path / "no_cls.pth")]) == 1


def test_first_validation_is_the_best_even_at_zero(tmp_path, monkeypatch):
    """An untrained model (mIoU 0) still gets a best file: the first validation always counts."""
    import engine.validation as validation

    class Evaluator:
        best_key = "mIoU"

    scores = iter([0.0, 0.0, 0.1])
    monkeypatch.setattr(validation, "evaluate", lambda *a, **k: {"mIoU": next(scores)})
    validator = validation.Validator(Evaluator(), None, "cpu", "none", str(tmp_path), is_main=False)
    assert [validator.run(None, i)[1] for i in (1, 2, 3)] == [True, False, True]
