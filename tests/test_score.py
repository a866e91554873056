"""SegmentationMetric against hand-computed confusion matrices and the DKD golden metric case."""
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from utils.score import SegmentationMetric

HERE = os.path.dirname(os.path.abspath(__file__))


def loop_confusion(pred, target, num_classes, ignore_index):
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for p, t in zip(pred.reshape(-1).tolist(), target.reshape(-1).tolist()):
        if t != ignore_index:
            cm[t, p] += 1
    return cm


def test_hand_computed_matrix_with_ignore_and_absent_class():
    # 4 classes; class 3 appears nowhere; -1 pixels are ignored whatever is predicted there.
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, -1, -1]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 0, 3, 0]]])
    metric = SegmentationMetric(4)
    metric.update(pred, target)
    want = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(metric.confusion_matrix, want)
    result = metric.get()
    # IoU: class 0: 1 / (2 + 2 - 1); class 1: 2 / (2 + 3 - 2); class 2: 1 / (2 + 1 - 1); class 3 absent
    assert result["IoU"][:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert math.isnan(result["IoU"][3]) and math.isnan(result["Acc"][3])
    assert result["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert result["Acc"][:3] == pytest.approx([1 / 2, 1.0, 1 / 2])
    assert result["pixAcc"] == pytest.approx(4 / 6)
    zero = metric.get(absent="zero")
    assert zero["IoU"][3] == 0.0
    assert zero["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 4)
    assert torch.equal(result["confusion_matrix"], want)


def test_class_only_predicted_counts_zero():
    metric = SegmentationMetric(3)
    metric.update(torch.tensor([[0, 2]]), torch.tensor([[0, 0]]))
    result = metric.get()
    assert result["IoU"][2] == 0.0 and math.isnan(result["IoU"][1])
    assert result["mIoU"] == pytest.approx((1 / 2 + 0.0) / 2)


def test_random_batches_match_loop_and_logits_path():
    generator = torch.Generator().manual_seed(0)
    metric, from_logits = SegmentationMetric(5, ignore_index=255), SegmentationMetric(5, ignore_index=255)
    total = torch.zeros(5, 5, dtype=torch.int64)
    for _ in range(3):
        logits = torch.randn(2, 5, 6, 7, generator=generator)
        target = torch.randint(0, 5, (2, 6, 7), generator=generator)
        target[torch.rand(2, 6, 7, generator=generator) < 0.2] = 255
        metric.update(logits.argmax(1), target)
        from_logits.update(logits, target)
        total += loop_confusion(logits.argmax(1), target, 5, 255)
    assert torch.equal(metric.confusion_matrix, total)
    assert torch.equal(from_logits.confusion_matrix, total)
    metric.reset()
    assert metric.confusion_matrix.sum() == 0
    assert math.isnan(metric.get()["mIoU"]) and metric.get(absent="zero")["mIoU"] == 0.0


def test_bad_inputs():
    metric = SegmentationMetric(3)
    with pytest.raises(ValueError, match="does not match"):
        metric.update(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        metric.update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 255]]))
    with pytest.raises(ValueError, match="absent"):
        metric.get(absent="skip")


def test_all_reduce_single_process_group(tmp_path):
    metric = SegmentationMetric(3)
    metric.update(torch.tensor([[0, 1, 2, 2]]), torch.tensor([[0, 1, 1, 2]]))
    before = metric.confusion_matrix.clone()
    metric.all_reduce()                                   # no process group: no-op
    assert torch.equal(metric.confusion_matrix, before)
    dist.init_process_group("gloo", init_method="file://%s" % (tmp_path / "store"), rank=0, world_size=1)
    try:
        metric.all_reduce()
    finally:
        dist.destroy_process_group()
    assert torch.equal(metric.confusion_matrix, before)


def test_dkd_golden_confusion_matrix():
    case = torch.load(os.path.join(HERE, "data", "golden_metrics", "dkd_metrics.pt"), weights_only=False)
    config, inputs, outputs = case["config"], case["inputs"], case["outputs"]
    metric = SegmentationMetric(config["num_class"], ignore_index=config["ignore_index"])
    metric.update(outputs["pred"], inputs["target"])
    assert torch.equal(metric.confusion_matrix.double(), outputs["confusion_matrix"])
    # DKD's IoU uses a -1e-6 in the denominator and counts absent classes as 0: the 'zero'
    # convention agrees up to that epsilon (relative 1e-6 on unions of tens of pixels).
    iou = torch.tensor(metric.get(absent="zero")["IoU"], dtype=torch.float64) * 100
    torch.testing.assert_close(iou, outputs["iou_by_class"].abs(), rtol=1e-6, atol=1e-6)
    direct = SegmentationMetric(config["num_class"], ignore_index=config["ignore_index"])
    direct.confusion_matrix += inputs["cm_direct"].long()
    iou = torch.tensor(direct.get(absent="zero")["IoU"], dtype=torch.float64) * 100
    torch.testing.assert_close(iou, outputs["cm_direct.iou_by_class"].abs(), rtol=1e-6, atol=1e-6)
    assert math.isnan(direct.get()["IoU"][config["absent_class"]])


def test_utils_score_imports_no_framework_packages():
    code = ("import sys, utils.score; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('models', 'losses', 'datasets')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(HERE))
