"""DKD's network against numbers made from the official model (tests/data/parity/dkd), its
incremental loading (only the new head missing, filled from the aux head) and prediction rule."""
import glob
import json
import os

import pytest
import torch

from models import get_segmentation_model
from parity import PARITY_DIR, build_parity_model, conv_specs, load_parity_case, run_parity_case

DKD_DIR = os.path.join(PARITY_DIR, "dkd")
CASES = sorted(glob.glob(os.path.join(DKD_DIR, "*.pt")))
FACTS = json.load(open(os.path.join(DKD_DIR, "parity_dkd_facts.json")))


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-3])
def test_keys_conv_specs_and_params(path):
    case = load_parity_case(path)
    model = build_parity_model(case)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [(k, tuple(s)) for k, s, _ in case["keys"]]
    assert conv_specs(model) == [tuple(tuple(x) if isinstance(x, (list, tuple)) else x for x in spec)
                                 for spec in case["conv_specs"]]
    assert sum(p.numel() for p in model.parameters()) == case["cost"]["params"]


@pytest.mark.parametrize("f64", [pytest.param(False, id="f32"), pytest.param(True, id="f64", marks=pytest.mark.slow)])
@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-3])
def test_forward_parity(path, f64):
    report = run_parity_case(load_parity_case(path), f64=f64)
    assert report["ok"], report["failures"][:5]


def test_incremental_loading_fills_the_new_head_from_the_aux_head(tmp_path):
    from losses.base import MissingKeys
    step0 = get_segmentation_model("dkd_deeplabv3", "resnet101", num_class=4, classes=[3])
    torch.save(step0.state_dict(), tmp_path / "step0.pth")

    def init(model, missing):
        model.init_novel_classifier()
    allowed = MissingKeys(("cls.2.weight", "cls.2.bias"), init)
    step1 = get_segmentation_model("dkd_deeplabv3", "resnet101", num_class=6, classes=[3, 2], pretrained=str(tmp_path / "step0.pth"),
                                   allow_missing=allowed.patterns, init_missing=allowed.init)
    assert torch.equal(step1.cls[2].weight, step0.cls[0].weight.expand(2, -1, -1, -1))
    assert torch.equal(step1.cls[2].bias, step0.cls[0].bias.expand(2))
    assert torch.equal(step1.cls[1].weight, step0.cls[1].weight)
    from models import CheckpointError
    with pytest.raises(CheckpointError):      # a file of another step (heads [3, 2, 2] need cls.2 from it)
        get_segmentation_model("dkd_deeplabv3", "resnet101", num_class=8, classes=[3, 2, 2], pretrained=str(tmp_path / "step0.pth"),
                               allow_missing=allowed.patterns, init_missing=allowed.init)


def test_sigmoid_prediction_rule_and_parts():
    from models.dkd import sigmoid_predict
    logits = torch.zeros(1, 4, 1, 1)
    logits[0, 2] = 1.0
    assert sigmoid_predict(logits).item() == 2
    logits[0, 2] = -1.0
    assert sigmoid_predict(logits).item() == 0            # nothing above 0.5: background
    model = get_segmentation_model("dkd_deeplabv3", "resnet101", num_class=4, classes=[2, 1]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
        small = torch.cat([h(out.head_feat) for h in model.cls[1:]], 1)
    bias = torch.cat([h.bias for h in model.cls[1:]]).view(1, -1, 1, 1)
    assert out.logits.shape[1] == 4 and out.pos_logits.shape[1] == 3
    assert torch.allclose(out.pos_logits + out.neg_logits + bias, small, atol=1e-5)     # P + Q + b = z
