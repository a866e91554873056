"""Model zoo behaviour: outputs, training step, factory arguments, weight loading and its errors."""
import functools
import math

import pytest
import torch
from torch import nn

import models
from models import (CheckpointError, SegOutputs, available_models, get_segmentation_model,
                    load_pretrained_base, load_state_file, register_model)
from models import registry
from models.heads import resolve_head_width

RESNET_CHANNELS = {"resnet18": (64, 128, 256, 512), "resnet50": (256, 512, 1024, 2048),
                   "resnet101": (256, 512, 1024, 2048)}
MOBILE_CHANNELS = (24, 32, 96, 320)


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights and BN statistics so loading mistakes change the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.05)
    return model


# ---------------------------------------------------------------- forward / backward
TRAIN_CASES = [
    ("deeplabv3", "resnet18", True), ("deeplabv3", "resnet18", False),
    ("psp", "resnet18", True), ("psp", "resnet18", False),
    ("deeplabv3", "resnet50", True), ("psp", "resnet50", False),
    ("deeplab_mobile", "mobilenetv2", False), ("psp_mobile", "mobilenetv2", False),
]
EXPECTED_NAMES = {
    ("deeplabv3", True): ["logits", "aux_logits", "c4", "head_feat"],
    ("deeplabv3", False): ["logits", "c4", "head_feat"],
    ("psp", True): ["logits", "aux_logits", "c4", "head_feat"],
    ("psp", False): ["logits", "c4", "head_feat"],
    ("deeplab_mobile", False): ["logits", "c4", "head_feat"],
    ("psp_mobile", False): ["logits", "head_feat"],
}


@pytest.mark.parametrize("name,backbone,aux", TRAIN_CASES)
def test_train_step_outputs_and_grads(name, backbone, aux):
    torch.manual_seed(0)
    model = get_segmentation_model(name, backbone, num_class=5, aux=aux).train()
    h, w = 41, 53
    x = torch.randn(2, 3, h, w)
    out = model(x)
    assert isinstance(out, SegOutputs) and list(out.names) == EXPECTED_NAMES[(name, aux)]
    assert len(out) == len(out.names)
    out_hw = (math.ceil(h / 8), math.ceil(w / 8))
    channels = RESNET_CHANNELS.get(backbone, MOBILE_CHANNELS)
    assert tuple(out.logits.shape) == (2, 5) + out_hw
    assert out.head_feat.shape[1] == model.head_width and out[-1] is out.head_feat
    for stage, c in zip(("c1", "c2", "c3", "c4"), channels):
        assert out.has(stage) and out.get(stage).shape[1] == c
        assert model.out_channels[stage] == c
    # the training loop builds methods from out_channels: it must name every output with its width
    assert model.out_channels == {name: t.shape[1] for name, t in out.as_dict().items()}
    assert out.c1.shape[2] == math.ceil(h / 4)  # c1 at 1/4, everything else at 1/8
    assert tuple(out.c4.shape[2:]) == out_hw
    assert ("c4" in out.names) == (name != "psp_mobile")
    if aux:
        assert tuple(out.aux_logits.shape) == (2, 5) + out_hw and out[1] is out.aux_logits
    for n in out.names:
        assert model.out_channels[n] == getattr(out, n).shape[1]
    loss = out.logits.square().mean() + out.head_feat.mean() + out.c4.mean()
    if aux:
        loss = loss + 0.4 * out.aux_logits.square().mean()
    loss.backward()
    params = dict(model.named_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params.values()), \
        [n for n, p in params.items() if p.grad is None]

    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    assert list(eval_out.names) == list(out.names)  # same list in train and eval mode


def test_train_mode_batch_one_fails_like_official():
    """BN on the 1x1 pooled ASPP branch needs 2 values per channel in train mode (official too)."""
    model = get_segmentation_model("deeplabv3", "resnet18").train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model(torch.randn(1, 3, 33, 33))
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 33, 33)).logits.shape[0] == 1


def test_norm_layer_is_used_everywhere_and_syncbn_keeps_keys():
    norm = functools.partial(nn.BatchNorm2d, eps=1e-3)
    for name, backbone, aux in [("deeplabv3", "resnet18", True), ("psp_mobile", "mobilenetv2", False)]:
        with torch.device("meta"):
            model = get_segmentation_model(name, backbone, aux=aux, norm_layer=norm)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns and all(m.eps == 1e-3 for m in bns)
        keys = list(model.state_dict())
        synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        assert list(synced.state_dict()) == keys
        assert not any(type(m) is nn.BatchNorm2d for m in synced.modules())


# ---------------------------------------------------------------- factory arguments
def test_factory_arguments_and_errors():
    assert {"deeplabv3", "psp", "deeplab_mobile", "psp_mobile"} <= set(available_models())
    with torch.device("meta"):
        model = get_segmentation_model("deeplabv3", "resnet18", pretrained_base="None", pretrained="None",
                                       local_rank=None, head_width="None", norm_layer=None)
        assert model.head_width == 128 and model.arch_name == "deeplabv3/resnet18"
        assert get_segmentation_model("deeplab_mobile", None).out_channels["c4"] == 320
        with pytest.raises(ValueError, match="unknown segmentation model 'deeplabv4'.*deeplabv3"):
            get_segmentation_model("deeplabv4", "resnet18")
        with pytest.raises(ValueError, match="resnet18 \\| resnet50 \\| resnet101.*deeplab_mobile"):
            get_segmentation_model("deeplabv3", "mobilenetv2")
        with pytest.raises(ValueError, match="no aux head"):
            get_segmentation_model("psp_mobile", "mobilenetv2", aux=True)
        with pytest.raises(ValueError, match="does not take \\['dilated'\\]"):
            get_segmentation_model("psp", "resnet18", dilated=True)
        with pytest.raises(ValueError, match="unknown head_width 'cirkd_v3'"):
            get_segmentation_model("psp", "resnet18", head_width="cirkd_v3")
        assert get_segmentation_model("psp", "resnet18", head_width="96").head_width == 96


def test_head_width_presets():
    for kind, c4, afdcd, v2 in [("deeplab", 512, 128, 512), ("deeplab", 2048, 256, 512), ("deeplab", 320, 128, 128),
                                ("psp", 512, 128, 128), ("psp", 2048, 512, 256), ("psp", 320, 128, 128)]:
        assert resolve_head_width(kind, c4, None) == afdcd
        assert resolve_head_width(kind, c4, "cirkd_v2") == v2
        assert resolve_head_width(kind, c4, 64) == 64
    with torch.device("meta"):
        default = get_segmentation_model("deeplabv3", "resnet101", aux=True).state_dict()
        v2 = get_segmentation_model("deeplabv3", "resnet101", aux=True, head_width="cirkd_v2").state_dict()
    assert list(default) == list(v2)
    changed = [k for k in default if default[k].shape != v2[k].shape]
    # PARITY.md: 36 tensors under head.aspp.* / head.block.* change; project 512 x 2560
    assert len(changed) == 36 and all(k.startswith(("head.aspp.", "head.block.")) for k in changed)
    assert tuple(v2["head.aspp.project.0.weight"].shape) == (512, 2560, 1, 1)


def test_register_model_adds_a_model(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model("tiny_test_model")
    def tiny(backbone, num_class=19, aux=False, norm_layer=nn.BatchNorm2d):
        return nn.Conv2d(3, num_class, 1)

    assert "tiny_test_model" in models.available_models()
    assert get_segmentation_model("tiny_test_model", None, num_class=3).out_channels == 3
    with pytest.raises(ValueError, match="registered twice"):
        register_model("tiny_test_model")(lambda **kw: None)
    with pytest.raises(ValueError, match="does not take \\['head_width'\\]"):
        get_segmentation_model("tiny_test_model", None, head_width=8)


# ---------------------------------------------------------------- whole checkpoints
def _outputs(model, x):
    model.eval()
    with torch.no_grad():
        return [t.clone() for t in model(x)]


@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict", "model"])
def test_pretrained_round_trip(tmp_path, wrap):
    torch.manual_seed(0)
    source = _randomize(get_segmentation_model("psp", "resnet18", num_class=7, aux=True))
    state = source.state_dict()
    if wrap == "module":
        state = {"module." + k: v for k, v in state.items()}
    elif wrap in ("state_dict", "model"):
        state = {wrap: state, "epoch": torch.tensor(3)}
    path = tmp_path / "ckpt.pth"
    torch.save(state, path)
    loaded = get_segmentation_model("psp", "resnet18", num_class=7, aux=True, pretrained=str(path), local_rank=None)
    x = torch.randn(1, 3, 40, 48)
    for a, b in zip(_outputs(source, x), _outputs(loaded, x)):
        assert torch.equal(a, b)


def test_pretrained_mismatch_report(tmp_path):
    path = tmp_path / "psp.pth"
    with torch.device("meta"):
        psp = get_segmentation_model("psp", "resnet18", aux=True)
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in psp.state_dict().items()}, path)
    with pytest.raises(CheckpointError) as info:
        get_segmentation_model("deeplabv3", "resnet18", aux=True, pretrained=str(path))
    first = str(info.value).splitlines()[0]
    assert str(path) in first and "does not fit deeplabv3/resnet18" in first
    assert "missing" in first and "unexpected" in first and "--teacher-model" in first
    assert "head.aspp.b0.0.weight" in str(info.value) and "head.psp.conv1.0.weight" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    with pytest.raises(CheckpointError, match="has an aux head: build the model with aux=True"):
        get_segmentation_model("psp", "resnet18", aux=False, pretrained=str(path))
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in psp.state_dict().items()}
    state["head.classifier.weight"] = torch.zeros(21, 128, 1, 1)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="0 missing, 0 unexpected, 1 mis-shaped.*head.classifier.weight"):
        get_segmentation_model("psp", "resnet18", aux=True, pretrained=str(path))


def test_cirkd_v2_checkpoint_builds_its_width(tmp_path):
    torch.manual_seed(0)
    v2 = _randomize(get_segmentation_model("deeplabv3", "resnet18", aux=True, head_width="cirkd_v2"))
    assert v2.head_width == 512
    path = tmp_path / "v2.pth"
    torch.save(v2.state_dict(), path)
    loaded = get_segmentation_model("deeplabv3", "resnet18", aux=True, pretrained=str(path))
    assert loaded.head_width == 512
    x = torch.randn(1, 3, 33, 41)
    assert all(torch.equal(a, b) for a, b in zip(_outputs(v2, x), _outputs(loaded, x)))
    with pytest.raises(CheckpointError, match="512 wide \\(preset 'cirkd_v2'\\).*head_width=128"):
        get_segmentation_model("deeplabv3", "resnet18", aux=True, pretrained=str(path), head_width=128)


class _RunsCode:
    """An object whose unpickling would call a function (here a harmless list append)."""
    calls = []

    def __reduce__(self):
        return (_RunsCode.calls.append, ("unpickled!",))


def test_weights_only_refuses_code_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"head.block.0.weight": torch.zeros(1), "payload": _RunsCode()}, path)
    _RunsCode.calls.clear()
    with pytest.raises(CheckpointError, match="weights_only=True.*plain state_dict.*never load untrusted"):
        load_state_file(str(path))
    with pytest.raises(CheckpointError, match="weights_only"):
        get_segmentation_model("deeplabv3", "resnet18", pretrained=str(path))
    assert _RunsCode.calls == []


def test_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state_file(str(tmp_path / "nope.pth"))
    with pytest.raises(CheckpointError, match="no checkpoint path"):
        load_state_file("None")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_state_file(str(tmp_path / "junk.pth"))
    torch.save({"weight": torch.zeros(1), "step": 3}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match="not a plain state_dict.*'step'"):
        load_state_file(str(tmp_path / "mixed.pth"))


# ---------------------------------------------------------------- ImageNet backbones
def _csail_file(model_name, backbone, extras, seed=0):
    """A synthetic CSAIL-layout ImageNet file: the backbone keys plus its classifier keys."""
    with torch.device("meta"):
        model = get_segmentation_model(model_name, backbone)
    root = getattr(model.pretrained, "imagenet_root", model.pretrained)
    g = torch.Generator().manual_seed(seed)
    state = {k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else torch.zeros(v.shape, dtype=v.dtype))
             for k, v in root.state_dict().items()}
    state.update({k: torch.randn(shape, generator=g) for k, shape in extras.items()})
    return state


@pytest.mark.parametrize("name,backbone,prefix,extras,count", [
    ("deeplabv3", "resnet18", "pretrained.", {"fc.weight": (1000, 512), "fc.bias": (1000,)}, 115),
    ("deeplab_mobile", "mobilenetv2", "pretrained.net.",
     {"features.18.0.weight": (1280, 320, 1, 1), "features.18.1.weight": (1280,),
      "classifier.1.weight": (1000, 1280), "classifier.1.bias": (1000,)}, 255),
])
def test_pretrained_base_loads_and_checks(tmp_path, name, backbone, prefix, extras, count):
    state = _csail_file(name, backbone, extras)
    # PARITY.md: 115 (ResNet-18) / 255 (MobileNetV2) tensors besides num_batches_tracked
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) - len(extras) == count
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # optional
    path = tmp_path / "imagenet.pth"
    torch.save(state, path)
    model = get_segmentation_model(name, backbone, pretrained_base=str(path))
    loaded = model.state_dict()
    for k, v in state.items():
        if k not in extras:
            assert torch.equal(loaded[prefix + k], v), k
    assert not any(k.startswith(prefix) and k[len(prefix):] in extras for k in loaded)

    first_key = next(iter(k for k in state if k not in extras))
    missing = dict(state)
    del missing[first_key]
    torch.save(missing, path)
    with pytest.raises(CheckpointError, match="1 missing.*%s" % first_key.replace(".", "\\.")):
        get_segmentation_model(name, backbone, pretrained_base=str(path))

    bad = dict(state)
    bad[first_key] = torch.zeros(7, 3, 7, 7)
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match="1 mis-shaped.*\\(7, 3, 7, 7\\)") as info:
        load_pretrained_base(get_segmentation_model(name, backbone), str(path))
    assert "tools.convert_checkpoint" in str(info.value).splitlines()[0]


def test_pretrained_base_rejects_a_segmentation_checkpoint(tmp_path):
    with torch.device("meta"):
        model = get_segmentation_model("deeplabv3", "resnet18")
    path = tmp_path / "seg.pth"
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in model.state_dict().items()}, path)
    with pytest.raises(CheckpointError, match="whole segmentation checkpoint; pass it as `pretrained`"):
        get_segmentation_model("deeplabv3", "resnet18", pretrained_base=str(path))
