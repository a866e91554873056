"""utils/flops.py (params / FLOPs) and tools/convert_checkpoint.py (ImageNet layouts)."""
import json
import os
import re

import pytest
import torch
from torch import nn

from models import CheckpointError, get_segmentation_model, load_pretrained_base
from tools import convert_checkpoint as convert
from utils import flops

HERE = os.path.dirname(os.path.abspath(__file__))
FACTS = os.path.join(HERE, "data", "parity", "parity_facts.json")
ZOO = [("deeplabv3", "resnet18", True), ("deeplabv3", "resnet101", True), ("deeplab_mobile", "mobilenetv2", False),
       ("psp", "resnet18", True), ("psp_mobile", "mobilenetv2", False)]


# ---------------------------------------------------------------- FLOPs and params
@pytest.mark.parametrize("name,backbone,aux", ZOO)
def test_cost_matches_parity_table_at_512x1024(name, backbone, aux):
    facts = json.load(open(FACTS))["models"]["%s_%s" % (name, backbone)]
    with torch.device("meta"):
        model = get_segmentation_model(name, backbone, aux=aux)
    cost = flops.model_cost(model, (512, 1024))
    assert cost["params"]["total"] == facts["params"]
    assert cost["params"]["without_aux"] == facts.get("params_without_aux", facts["params"])
    assert cost["params"]["aux"] == facts["params_by_top"].get("auxlayer", 0)
    assert abs(cost["flops"]["total"] / facts["flops_512x1024"] - 1) < 0.01
    without_aux = facts.get("flops_512x1024_without_aux", facts["flops_512x1024"])
    assert abs(cost["flops"]["without_aux"] / without_aux - 1) < 0.01
    assert cost["flops"]["aux"] == cost["flops"]["total"] - cost["flops"]["without_aux"]


def _conv_flops_by_hooks(model, x):
    """2 * multiply-adds of every Conv2d, computed from the shapes it actually produced."""
    total = []

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total.append(2 * output.numel() * k)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return sum(total)


@pytest.mark.parametrize("name,backbone,aux", [("deeplabv3", "resnet18", True), ("psp_mobile", "mobilenetv2", False)])
def test_flops_equal_conv_formula_on_cpu_and_meta(name, backbone, aux):
    size = (57, 75)
    model = get_segmentation_model(name, backbone, aux=aux)
    expected = _conv_flops_by_hooks(model, torch.zeros(1, 3, *size))
    counted = flops.count_flops(model, size)
    assert counted["total"] == expected
    if aux:
        aux_expected = _conv_flops_by_hooks(model.auxlayer, model.eval()(torch.zeros(1, 3, *size)).c3)
        assert counted["aux"] == aux_expected > 0
    model.train()
    with torch.device("meta"):
        meta_model = get_segmentation_model(name, backbone, aux=aux)
    assert flops.count_flops(meta_model, size) == counted
    assert model.training  # mode restored


def test_flops_cli(capsys):
    assert flops.main(["--model", "psp", "--backbone", "resnet18", "--size", "512", "1024"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith("psp/resnet18 @ 512x1024")
    assert re.search(r"params 12,919,334 total / 12,770,515 without aux, \d+\.\d\d GFLOPs total / \d+\.\d\d without aux",
                     line)
    assert flops.main(["--model", "psp_mobile", "--size", "64", "64"]) == 0  # aux auto -> off
    assert flops.main(["--model", "nope", "--backbone", "resnet18"]) == 2
    assert "unknown segmentation model" in capsys.readouterr().err


# ---------------------------------------------------------------- layouts built from their documentation
def _bn(state, prefix, channels, gen):
    state[prefix + ".weight"] = torch.rand(channels, generator=gen) + 0.5
    state[prefix + ".bias"] = torch.randn(channels, generator=gen)
    state[prefix + ".running_mean"] = torch.randn(channels, generator=gen)
    state[prefix + ".running_var"] = torch.rand(channels, generator=gen) + 0.5
    state[prefix + ".num_batches_tracked"] = torch.tensor(100)


MBV2_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def torchvision_mobilenetv2_state(seed=0):
    """torchvision.models.mobilenet_v2 keys: Conv2dNormActivation = Sequential(conv, bn, relu6)."""
    g = torch.Generator().manual_seed(seed)
    st = {"features.0.0.weight": torch.randn(32, 3, 3, 3, generator=g)}
    _bn(st, "features.0.1", 32, g)
    inp, index = 32, 1
    for t, c, n, _ in MBV2_SETTING:
        for _ in range(n):
            hid, p = inp * t, "features.%d.conv" % index
            if t == 1:
                st[p + ".0.0.weight"] = torch.randn(hid, 1, 3, 3, generator=g)
                _bn(st, p + ".0.1", hid, g)
                st[p + ".1.weight"] = torch.randn(c, hid, 1, 1, generator=g)
                _bn(st, p + ".2", c, g)
            else:
                st[p + ".0.0.weight"] = torch.randn(hid, inp, 1, 1, generator=g)
                _bn(st, p + ".0.1", hid, g)
                st[p + ".1.0.weight"] = torch.randn(hid, 1, 3, 3, generator=g)
                _bn(st, p + ".1.1", hid, g)
                st[p + ".2.weight"] = torch.randn(c, hid, 1, 1, generator=g)
                _bn(st, p + ".3", c, g)
            inp, index = c, index + 1
    st["features.18.0.weight"] = torch.randn(1280, 320, 1, 1, generator=g)
    _bn(st, "features.18.1", 1280, g)
    st["classifier.1.weight"] = torch.randn(1000, 1280, generator=g)
    st["classifier.1.bias"] = torch.randn(1000, generator=g)
    return st


def test_torchvision_mobilenetv2_converts_and_values_land(tmp_path):
    tv = torchvision_mobilenetv2_state()
    src, dst = tmp_path / "tv_mbv2.pth", tmp_path / "csail_mbv2.pth"
    torch.save(tv, src)
    assert convert.main([str(src), str(dst)]) == 0
    model = get_segmentation_model("deeplab_mobile", "mobilenetv2", pretrained_base=str(dst))
    ours = {k[len("pretrained.net."):]: v for k, v in model.state_dict().items() if k.startswith("pretrained.net.")}
    # CSAIL names (ours) <- torchvision names, written out from the two documented layouts
    expected = {"features.0.0.weight": "features.0.0.weight", "features.0.1.running_var": "features.0.1.running_var",
                "features.1.conv.0.weight": "features.1.conv.0.0.weight",   # dw
                "features.1.conv.1.bias": "features.1.conv.0.1.bias",
                "features.1.conv.3.weight": "features.1.conv.1.weight",     # pw linear
                "features.1.conv.4.running_mean": "features.1.conv.2.running_mean"}
    for index in range(2, 18):
        expected.update({"features.%d.conv.0.weight" % index: "features.%d.conv.0.0.weight" % index,
                         "features.%d.conv.1.weight" % index: "features.%d.conv.0.1.weight" % index,
                         "features.%d.conv.3.weight" % index: "features.%d.conv.1.0.weight" % index,
                         "features.%d.conv.4.weight" % index: "features.%d.conv.1.1.weight" % index,
                         "features.%d.conv.4.running_var" % index: "features.%d.conv.1.1.running_var" % index,
                         "features.%d.conv.6.weight" % index: "features.%d.conv.2.weight" % index,
                         "features.%d.conv.7.bias" % index: "features.%d.conv.3.bias" % index})
    for our_key, tv_key in expected.items():
        assert torch.equal(ours[our_key], tv[tv_key]), (our_key, tv_key)
    assert len(tv) - 8 == len(ours)  # everything but features.18 (conv + 5 BN entries) and classifier (2)


def _deep_stem_resnet50_state(stem=(64, 64, 128), avg_down=False, seed=0):
    """timm ResNet(stem_type='deep') keys: conv1.0/1/3/4/6 + bn1; blocks conv1..3/bn1..3/downsample."""
    g = torch.Generator().manual_seed(seed)
    st = {"conv1.0.weight": torch.randn(stem[0], 3, 3, 3, generator=g)}
    _bn(st, "conv1.1", stem[0], g)
    st["conv1.3.weight"] = torch.randn(stem[1], stem[0], 3, 3, generator=g)
    _bn(st, "conv1.4", stem[1], g)
    st["conv1.6.weight"] = torch.randn(stem[2], stem[1], 3, 3, generator=g)
    _bn(st, "bn1", stem[2], g)
    inplanes = stem[2]
    for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for b in range(blocks):
            p = "layer%d.%d." % (layer, b)
            st[p + "conv1.weight"] = torch.randn(planes, inplanes, 1, 1, generator=g)
            _bn(st, p + "bn1", planes, g)
            st[p + "conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=g)
            _bn(st, p + "bn2", planes, g)
            st[p + "conv3.weight"] = torch.randn(planes * 4, planes, 1, 1, generator=g)
            _bn(st, p + "bn3", planes * 4, g)
            if b == 0:
                conv, bn = ("downsample.1", "downsample.2") if avg_down else ("downsample.0", "downsample.1")
                st[p + conv + ".weight"] = torch.randn(planes * 4, inplanes, 1, 1, generator=g)
                _bn(st, p + bn, planes * 4, g)
            inplanes = planes * 4
    st["fc.weight"] = torch.randn(1000, 2048, generator=g)
    st["fc.bias"] = torch.randn(1000, generator=g)
    return st


def test_timm_deep_stem_resnet_converts(tmp_path):
    timm_state = _deep_stem_resnet50_state()
    converted, arch = convert.convert_state(timm_state, "timm")
    assert arch == "resnet50"
    model = get_segmentation_model("psp", "resnet50")
    load_pretrained_base(model, converted)
    ours = model.state_dict()
    for our_key, timm_key in [("conv1.weight", "conv1.0.weight"), ("bn1.running_mean", "conv1.1.running_mean"),
                              ("conv2.weight", "conv1.3.weight"), ("bn2.bias", "conv1.4.bias"),
                              ("conv3.weight", "conv1.6.weight"), ("bn3.weight", "bn1.weight"),
                              ("layer2.0.downsample.0.weight", "layer2.0.downsample.0.weight"),
                              ("layer4.2.bn3.running_var", "layer4.2.bn3.running_var")]:
        assert torch.equal(ours["pretrained." + our_key], timm_state[timm_key]), our_key


def test_refused_layouts(tmp_path, capsys):
    with pytest.raises(convert.ConversionError, match="ResNet-D shortcuts.*refused"):
        convert.convert_state(_deep_stem_resnet50_state(avg_down=True))
    with pytest.raises(convert.ConversionError, match="width 32-32-64.*64-64-128"):
        convert.convert_state(_deep_stem_resnet50_state(stem=(32, 32, 64), avg_down=True))
    # torchvision ResNet-18: a single 7x7 conv1 + bn1 stem, BasicBlocks, fc
    g = torch.Generator().manual_seed(0)
    tv = {"conv1.weight": torch.randn(64, 3, 7, 7, generator=g)}
    _bn(tv, "bn1", 64, g)
    tv["layer1.0.conv1.weight"] = torch.randn(64, 64, 3, 3, generator=g)
    tv["fc.weight"] = torch.randn(1000, 512, generator=g)
    src = tmp_path / "resnet18-torchvision.pth"
    torch.save(tv, src)
    assert convert.main([str(src), str(tmp_path / "out.pth")]) == 2
    err = capsys.readouterr().err
    assert "torchvision-layout ResNet (single 7x7 stem conv1)" in err and "deep stem" in err
    assert not (tmp_path / "out.pth").exists()
    with pytest.raises(CheckpointError, match="whole segmentation checkpoint"):
        convert.detect_layout({"pretrained.conv1.weight": torch.zeros(1)})
    with pytest.raises(convert.ConversionError, match="looks like torchvision_mobilenetv2"):
        convert.convert_state(torchvision_mobilenetv2_state(), "timm")


def test_csail_file_passes_through(tmp_path):
    with torch.device("meta"):
        backbone = get_segmentation_model("deeplabv3", "resnet18").pretrained
    state = {k: torch.ones(v.shape, dtype=v.dtype) for k, v in backbone.state_dict().items()}
    state.update({"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)})
    converted, arch = convert.convert_state(state)
    assert arch == "resnet18" and converted.keys() == state.keys()
    del state["layer4.1.conv2.weight"]
    with pytest.raises(convert.ConversionError, match="1 missing \\(layer4.1.conv2.weight\\)"):
        convert.convert_state(state)
