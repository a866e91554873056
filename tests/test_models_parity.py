"""Architecture parity of the model zoo against the official Af-DCD numbers (tests/data/parity).

Every case: state_dict keys/shapes/order, every Conv2d's hyper-parameters, and the forward
numbers in eval and train mode, in float32 and float64 (tests/parity_ref/check.py).
"""
import glob
import os

import pytest

from parity import PARITY_DIR, build_parity_model, conv_specs, load_parity_case, run_parity_case

CASES = sorted(glob.glob(os.path.join(PARITY_DIR, "*.pt")))


def _case_id(path):
    return os.path.splitext(os.path.basename(path))[0]


def test_all_five_cases_present():
    assert [_case_id(p) for p in CASES] == sorted([
        "deeplabv3_resnet18", "deeplabv3_resnet101", "deeplab_mobile_mobilenetv2",
        "psp_resnet18", "psp_mobile_mobilenetv2"])


@pytest.mark.parametrize("path", CASES, ids=_case_id)
def test_keys_order_and_conv_specs(path):
    case = load_parity_case(path)
    model = build_parity_model(case)
    assert [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()] \
        == [(k, tuple(s), d) for k, s, d in case["keys"]]
    want = [tuple(tuple(x) if isinstance(x, (list, tuple)) else x for x in spec) for spec in case["conv_specs"]]
    assert conv_specs(model) == want
    assert list(model.output_names) == list(case["output_names"])


@pytest.mark.parametrize("f64", [False, True], ids=["f32", "f64"])
@pytest.mark.parametrize("path", CASES, ids=_case_id)
def test_parity_numbers(path, f64):
    report = run_parity_case(load_parity_case(path), f64=f64)
    assert report["ok"], report["failures"]
    assert report["warnings"] == []
