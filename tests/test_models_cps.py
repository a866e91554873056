"""MGD / CPS DeepLabV3+ (``deeplabv3plus_cps``) against numbers made from the official networks
(tests/data/parity/mgd, PARITY_MGD.md of the shared parity cases): keys and order, every Conv2d,
forward numbers in eval and train mode (float32 and float64), params and FLOPs of all four
networks; released-checkpoint and ImageNet-file loading as the official code does it."""
import glob
import json
import os

import pytest
import torch

from models import CheckpointError, get_segmentation_model
from parity import PARITY_DIR, build_parity_model, conv_specs, load_parity_case, run_parity_case

MGD_DIR = os.path.join(PARITY_DIR, "mgd")
CASES = sorted(glob.glob(os.path.join(MGD_DIR, "*.pt")))
FACTS = json.load(open(os.path.join(MGD_DIR, "parity_mgd_facts.json")))


def _id(path):
    return os.path.splitext(os.path.basename(path))[0]


def test_public_cases_present():
    assert {_id(p) for p in CASES} == {"deeplabv3plus_cps_resnet18", "deeplabv3plus_cps_mobilenetv2",
                                       "deeplabv3plus_cps_resnet101"}


@pytest.mark.parametrize("path", CASES, ids=_id)
def test_keys_and_conv_specs(path):
    case = load_parity_case(path)
    model = build_parity_model(case)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [(k, tuple(s)) for k, s, _ in case["keys"]]
    assert conv_specs(model) == [tuple(tuple(x) if isinstance(x, (list, tuple)) else x for x in spec)
                                 for spec in case["conv_specs"]]


def _forward_params():
    # ResNet-101 and the float64 runs take ~70 s on 2 cores: they run with -m slow
    out = []
    for path in CASES:
        for f64 in (False, True):
            slow = f64 or "resnet101" in path
            out.append(pytest.param(path, f64, id="%s-%s" % (_id(path), "f64" if f64 else "f32"),
                                    marks=(pytest.mark.slow,) if slow else ()))
    return out


@pytest.mark.parametrize("path,f64", _forward_params())
def test_forward_parity(path, f64):
    report = run_parity_case(load_parity_case(path), f64=f64)
    assert report["ok"], report["failures"][:5]


@pytest.mark.parametrize("backbone,fact", [("resnet18", "deeplabv3plus_cps_resnet18"),
                                           ("mobilenetv2", "deeplabv3plus_cps_mobilenetv2"),
                                           ("resnet101", "deeplabv3plus_cps_resnet101"),
                                           ("wide_resnet50_2", "deeplabv3plus_cps_wrn50_2")])
def test_params_and_flops_of_the_four_networks(backbone, fact):
    from torch.utils.flop_counter import FlopCounterMode
    model = get_segmentation_model("deeplabv3plus_cps", backbone, num_class=21).eval()
    assert sum(p.numel() for p in model.parameters()) == FACTS["models"][fact]["params"]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    flops = counter.get_total_flops()
    assert out.logits.shape[-2:] == (64, 64) and out.head_feat.shape[-2:] == (16, 16)
    # FLOPs scale with the pixel count for a fully convolutional net (the stored figure is at 512x512)
    assert flops * 64 == pytest.approx(FACTS["models"][fact]["flops_1x3x512x512"], rel=2e-3)


def test_released_cps_checkpoint_loads_branch1_strictly(tmp_path):
    teacher = get_segmentation_model("deeplabv3plus_cps", "resnet18", num_class=21)
    other = get_segmentation_model("deeplabv3plus_cps", "resnet18", num_class=21)
    state = {"branch1." + k: v for k, v in teacher.state_dict().items()}
    state.update({"branch2." + k: torch.zeros_like(v) for k, v in other.state_dict().items()})
    torch.save({"model": state, "optimizer_l": {}}, tmp_path / "cps.pth")
    loaded = get_segmentation_model("deeplabv3plus_cps", "resnet18", num_class=21, pretrained=str(tmp_path / "cps.pth"))
    for key, value in teacher.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    with pytest.raises(CheckpointError) as err:
        get_segmentation_model("deeplabv3plus_cps", "resnet101", num_class=21, pretrained=str(tmp_path / "cps.pth"))
    assert "cps.pth" in str(err.value).splitlines()[0]


def test_imagenet_files_as_the_official_code_loads_them(tmp_path):
    """torchvision ResNet-18: bn1 and layer1..4 load, the deep stem keeps its random init, conv1 (7x7)
    and fc are dropped; torchvision MobileNetV2: everything but features.18 loads."""
    model = get_segmentation_model("deeplabv3plus_cps", "resnet18", num_class=21)
    stem_before = model.backbone.conv1[0].weight.clone()
    torchvision_like = {k: torch.randn_like(v) if v.is_floating_point() else v
                        for k, v in model.backbone.state_dict().items() if not k.startswith("conv1.")}
    torchvision_like.update({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512),
                             "fc.bias": torch.zeros(1000)})
    torch.save(torchvision_like, tmp_path / "resnet18.pth")
    model = get_segmentation_model("deeplabv3plus_cps", "resnet18", num_class=21,
                                   pretrained_base=str(tmp_path / "resnet18.pth"))
    assert torch.equal(model.backbone.layer4[1].conv2.weight, torchvision_like["layer4.1.conv2.weight"])
    assert torch.equal(model.backbone.bn1.weight, torchvision_like["bn1.weight"])
    assert not torch.equal(model.backbone.conv1[0].weight, stem_before)      # a fresh random init, not loaded
    mobile = get_segmentation_model("deeplabv3plus_cps", "mobilenetv2", num_class=21)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in mobile.backbone.state_dict().items()}
    state["features.18.0.weight"] = torch.zeros(1280, 320, 1, 1)
    torch.save(state, tmp_path / "mbv2.pth")
    mobile = get_segmentation_model("deeplabv3plus_cps", "mobilenetv2", num_class=21,
                                    pretrained_base=str(tmp_path / "mbv2.pth"))
    assert torch.equal(mobile.backbone.features[17].conv[1][0].weight, state["features.17.conv.1.0.weight"])
    with pytest.raises(CheckpointError):      # a ResNet-101 deep stem (bn1 128) cannot take a torchvision file
        get_segmentation_model("deeplabv3plus_cps", "resnet101", num_class=21,
                               pretrained_base=str(tmp_path / "resnet18.pth"))


def test_mobilenet_output_stride_option():
    official = get_segmentation_model("deeplabv3plus_cps", "mobilenetv2", num_class=21).eval()
    os16 = get_segmentation_model("deeplabv3plus_cps", "mobilenetv2", num_class=21, mobilenet_output_stride=16).eval()
    with torch.no_grad():
        assert official(torch.zeros(1, 3, 64, 64)).c4.shape[-1] == 2
        assert os16(torch.zeros(1, 3, 64, 64)).c4.shape[-1] == 4
    assert list(official.state_dict()) == list(os16.state_dict())
