"""eval.py: whole, slide and multi-scale+flip agree on a model that predicts one class everywhere
(each against the analytic figures, and against each other)."""
import json

import pytest
import torch

from e2e_common import evaluate, make_citys


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory):
    from models import get_segmentation_model
    base = tmp_path_factory.mktemp("eval")
    data = make_citys(str(base / "data"), num_train=1, num_val=2)
    model = get_segmentation_model("deeplabv3", "resnet18", num_class=19, aux=True)
    with torch.no_grad():
        for conv in (model.head.block[4], model.auxlayer.block[4]):
            conv.weight.zero_()
            conv.bias.zero_()
            conv.bias[0] = 5.0          # "road" everywhere
    path = base / "constant.pth"
    torch.save(model.state_dict(), path)
    return data, str(path), base


@pytest.mark.parametrize("protocol", [[], ["--mode", "slide", "--crop-size", "64", "64", "--stride", "40", "40"],
                                      ["--scales", "0.5", "1.0", "1.25", "--flip-eval"]],
                         ids=["whole", "slide", "ms_flip"])
def test_protocols_agree_on_constant_prediction(constant_model, protocol):
    data, ckpt, base = constant_model
    out = base / ("_".join(protocol) or "whole")
    assert evaluate(["--model", "deeplabv3", "--backbone", "resnet18", "--dataset", "citys", "--data", data,
                     "--pretrained", ckpt, "--save-dir", str(out), "--no-progress", "--workers", "0"] + protocol) == 0
    result = json.load(open(out / "results.json"))
    road_iou = result["per_class_IoU"]["road"]
    # every pixel is predicted "road": IoU(road) = road pixels / valid pixels = pixAcc
    assert result["pixAcc"] == pytest.approx(road_iou, abs=1e-6)
    assert result["mIoU"] == pytest.approx(road_iou / 19, abs=1e-6)
    assert protocol[:2] == ["--mode", "slide"] or "whole" in result["protocol"]


def test_protocols_give_the_same_figures(constant_model):
    """The three protocols, run side by side, report identical figures for a constant prediction."""
    data, ckpt, base = constant_model
    results = []
    for i, protocol in enumerate([[], ["--mode", "slide", "--crop-size", "48", "80", "--stride", "32", "50"],
                                  ["--scales", "0.75", "1.5", "--flip-eval"]]):
        out = base / ("compare_%d" % i)
        assert evaluate(["--model", "deeplabv3", "--backbone", "resnet18", "--dataset", "citys", "--data", data,
                         "--pretrained", ckpt, "--save-dir", str(out), "--no-progress", "--workers", "0"]
                        + protocol) == 0
        results.append(json.load(open(out / "results.json")))
    assert len({r["protocol"] for r in results}) == 3
    for other in results[1:]:
        for key in ("pixAcc", "mIoU", "mAcc"):
            assert other[key] == pytest.approx(results[0][key], abs=1e-9), key
        assert other["per_class_IoU"] == pytest.approx(results[0]["per_class_IoU"], abs=1e-9)
