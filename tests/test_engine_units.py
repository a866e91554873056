"""Unit tests of the engine's pieces: input adapters, OHEM CE, parameter groups, the schedule,
--kd-method parsing, stream samplers, declared-missing checkpoint keys, and the losses/ layout."""
import argparse
import ast
import os
import re

import pytest
import torch
import torch.nn.functional as F

import losses
from datasets import IterationSampler
from datasets.transforms import MEAN_BGR
from engine.optim import poly_lr, scheduled_lr
from losses.task import OhemCrossEntropyLoss, TaskLoss
from models import CheckpointError, get_segmentation_model, load_pretrained
from models.meta import (CIRKD_NORM, IMAGENET_RGB, PIPELINE_NORM, AffineInputAdapter, InputNorm,
                         set_input_source)
from models.param_groups import freeze_batchnorm, param_groups

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pipeline_norm_is_what_the_pipeline_makes():
    assert PIPELINE_NORM == CIRKD_NORM and tuple(PIPELINE_NORM.mean) == pytest.approx(tuple(MEAN_BGR.tolist()))


def test_adapter_is_exact_and_invertible():
    pixels_bgr = torch.randint(0, 256, (2, 3, 5, 7)).double()
    cirkd = pixels_bgr - torch.tensor(CIRKD_NORM.mean, dtype=torch.float64).view(1, 3, 1, 1)
    to_rgb = AffineInputAdapter(CIRKD_NORM, IMAGENET_RGB)(cirkd)
    rgb = pixels_bgr[:, [2, 1, 0]]
    want = (rgb - torch.tensor(IMAGENET_RGB.mean).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_RGB.std).view(1, 3, 1, 1)
    assert torch.allclose(to_rgb, want.double(), atol=1e-12)
    back = AffineInputAdapter(IMAGENET_RGB, CIRKD_NORM)(to_rgb)
    assert torch.allclose(back, cirkd, atol=1e-10)
    same_order = InputNorm("bgr_std", CIRKD_NORM.mean, (2.0, 2.0, 2.0), rgb=False)
    assert torch.allclose(AffineInputAdapter(CIRKD_NORM, same_order)(cirkd), cirkd / 2, atol=1e-12)


def test_set_input_source_is_identity_for_the_cirkd_family_and_never_in_the_state_dict():
    net = get_segmentation_model("deeplabv3", "resnet18", num_class=3).eval()
    keys = list(net.state_dict())
    assert set_input_source(net, PIPELINE_NORM) is None
    x = torch.randn(1, 3, 32, 32)
    out = net(x).logits
    net.meta = type(net.meta)(input_norm=IMAGENET_RGB)
    adapter = set_input_source(net, PIPELINE_NORM)
    assert adapter is not None and list(net.state_dict()) == keys
    assert torch.allclose(net(x).logits, get_out(net, adapter(x)), atol=1e-6)
    assert not torch.allclose(net(x).logits, out)
    set_input_source(net, IMAGENET_RGB)          # replaced, not stacked
    assert torch.allclose(net(x).logits, get_out(net, x), atol=1e-6)


def get_out(net, x):
    handle = net.__dict__.pop("_input_adapter_handle", None)
    try:
        if handle is not None:
            handle.remove()
        return net(x).logits
    finally:
        if handle is not None:
            adapter = net.__dict__["input_adapter"]
            net.__dict__["_input_adapter_handle"] = net.register_forward_pre_hook(lambda m, a: (adapter(a[0]),))


def reference_ohem(logits, labels, ignore, thresh, min_kept):
    """CPS ProbOhemCrossEntropy2d, written out over flat pixels."""
    b, c, h, w = logits.shape
    target = labels.view(-1).clone()
    valid = target != ignore
    prob = F.softmax(logits, 1).transpose(0, 1).reshape(c, -1)
    num_valid = int(valid.sum())
    if num_valid >= min_kept:
        mask_prob = prob[target.clamp_min(0), torch.arange(target.numel())]
        mask_prob = torch.where(valid, mask_prob, torch.ones_like(mask_prob))
        threshold = thresh
        if min_kept > 0:
            index = mask_prob.argsort()
            kth = mask_prob[index[min(len(index), min_kept) - 1]]
            if kth > thresh:
                threshold = kth
        kept = mask_prob <= threshold
        target = torch.where(valid & kept, target, torch.full_like(target, ignore))
    return F.cross_entropy(logits, target.view(b, h, w), ignore_index=ignore)


@pytest.mark.parametrize("min_kept", [0, 40, 5000])
def test_ohem_matches_the_cps_definition(min_kept):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 8, 9, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 5, (2, 8, 9), generator=g)
    labels[0, :2] = -1
    got = OhemCrossEntropyLoss(-1, 0.7, min_kept)(logits, labels)
    assert torch.allclose(got, reference_ohem(logits, labels, -1, 0.7, min_kept), atol=1e-12)
    assert float(OhemCrossEntropyLoss(-1, 0.7, min_kept)(logits, torch.full_like(labels, -1))) == 0.0


def test_task_loss_kinds_and_align_corners():
    logits = torch.randn(2, 4, 4, 4)
    labels = torch.randint(0, 4, (2, 16, 16))
    from models.outputs import SegOutputs
    out = SegOutputs([logits, logits * 2], ("logits", "aux_logits"))
    terms = TaskLoss("ce", 0.4)(out, labels)
    assert set(terms) == {"task", "task_aux"}
    up_false = F.interpolate(logits, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(TaskLoss("ce", 0.0, align_corners=False)(out, labels)["task"],
                          F.cross_entropy(up_false, labels))
    with pytest.raises(ValueError):
        TaskLoss("focal")


def test_param_groups_split_heads_and_no_decay():
    net = get_segmentation_model("deeplabv3", "resnet18", num_class=3, aux=True)
    groups = param_groups(net, 1e-4, head_lr_mult=10, decay_norm_and_bias=False)
    names = [g["name"] for g in groups]
    assert names == ["backbone", "backbone_no_decay", "head", "head_no_decay"]
    by_name = {g["name"]: g for g in groups}
    assert by_name["head"]["lr_mult"] == 10 and by_name["backbone"]["lr_mult"] == 1
    assert by_name["backbone_no_decay"]["weight_decay"] == 0 and by_name["head"]["weight_decay"] == 1e-4
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    head_ids = {id(p) for g in groups if g["name"].startswith("head") for p in g["params"]}
    assert id(net.auxlayer.block[0].weight) in head_ids and id(net.head.block[4].bias) in head_ids
    bn_ids = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(net.pretrained.bn1.weight) in bn_ids and id(net.head.block[4].weight) not in bn_ids
    assert [g["name"] for g in param_groups(net, 1e-4)] == ["backbone", "head"]   # defaults: CIRKD's


def test_freeze_batchnorm():
    net = get_segmentation_model("deeplabv3", "resnet18", num_class=3).train()
    freeze_batchnorm(net)
    bn = net.pretrained.bn1
    assert not bn.training and not bn.weight.requires_grad and net.head.block[4].weight.requires_grad
    assert all(not p.requires_grad for g in param_groups(net, 0) for p in g["params"] if p is bn.weight)


def test_schedule_warmup_then_poly():
    args = argparse.Namespace(lr=0.1, max_iterations=10, power=0.9, lr_min=0.0, warmup_iters=None,
                              warmup_fraction=0.2, warmup_factor=0.001)
    assert scheduled_lr(args, 1) == pytest.approx(0.1 * 0.001)
    assert scheduled_lr(args, 2) == pytest.approx(0.1 * (0.001 + 0.999 * 0.5))
    assert scheduled_lr(args, 3) == pytest.approx(poly_lr(0.1, 3, 10, 0.9))
    args.warmup_fraction = 0.0
    assert [scheduled_lr(args, i) for i in (1, 5)] == [poly_lr(0.1, 1, 10, 0.9), poly_lr(0.1, 5, 10, 0.9)]


def test_method_spec_is_parsed_once_and_refuses_conflicts():
    spec = losses.parse_spec("kd+bpkd")
    args = argparse.Namespace(kd_method="kd+bpkd")
    assert [c.name for c in spec.classes] == ["kd", "bpkd"] and spec.teachers_needed(args) == 1
    assert spec.streams_needed(args) == ("labeled",)
    with pytest.raises(ValueError, match="twice"):
        losses.parse_spec("kd+kd")
    with pytest.raises(KeyError):
        losses.parse_spec("kd+nope")
    with pytest.raises(ValueError, match="both define task_loss"):
        losses.parse_spec("tf_kd+tf_kd_reg")


def test_combined_terms_with_the_same_name_are_an_error():
    class A(losses.DistillMethod):
        num_teachers = 0

        @classmethod
        def from_args(cls, args, s, t):
            return cls()

        def forward(self, ctx):
            return {"x": torch.tensor(1.0)}

    class B(A):
        name = "b"

    combined = losses.CombinedMethod([A(), B()])
    with pytest.raises(losses.TermConflict, match="both return the term 'x'"):
        combined(None)


def test_stream_samplers_are_independent_and_the_labeled_one_unchanged():
    labeled = IterationSampler(10, 2, 5, seed=3)
    legacy_positions = [labeled.item(p) for p in range(10)]
    assert legacy_positions == [IterationSampler(10, 2, 5, seed=3, salt=0).item(p) for p in range(10)]
    unlabeled = IterationSampler(10, 2, 5, seed=3, salt=1)
    assert [unlabeled.item(p) for p in range(10)] != legacy_positions
    resumed = IterationSampler(10, 2, 5, seed=3, salt=1, start_iteration=2)
    assert list(resumed) == list(unlabeled)[4:]


def test_load_pretrained_declared_missing_keys():
    net = get_segmentation_model("deeplabv3", "resnet18", num_class=3)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("head.block.4.")}
    with pytest.raises(CheckpointError):
        load_pretrained(net, state)
    seen = []
    allowed = load_pretrained(net, state, allow_missing=("head.block.4.*",), init_missing=lambda m, k: seen.append(k))
    assert sorted(allowed) == ["head.block.4.bias", "head.block.4.weight"] and seen == [allowed]
    state.pop("head.aspp.b0.0.weight")
    with pytest.raises(CheckpointError, match="missing head.aspp.b0.0.weight"):
        load_pretrained(net, state, allow_missing=("head.block.4.*",))


def _method_files():
    folder = os.path.join(ROOT, "losses")
    files = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            text = open(os.path.join(folder, name)).read()
            files[name[:-3]] = text
    return files


def test_no_method_file_imports_another_method_file():
    files = _method_files()
    method_files = {name for name, text in files.items() if re.search(r"^@register\(", text, re.M)}
    assert {"kd", "skd", "af_dcd", "tf_fd", "none"} <= method_files and "registry" not in method_files
    for name, text in files.items():
        imported = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                imported.add(node.module.split(".")[0])
        bad = (imported & method_files) - {name}
        assert not bad, "losses/%s.py imports method file(s) %s; share code through losses/common.py" % (name, bad)
