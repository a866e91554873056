"""CIRKD and MasKD: defaults from the CLI, queue state, injected draws, the two MasKD stages."""
import argparse
import io
import os

import pytest
import torch

from golden import load_case, run_case
from losses import available_methods
from losses.base import StepContext
from losses.cirkd import CIRKD, CIRKDMiniBatchLoss
from losses.maskd import MasKD, MasKDTokens, load_token_file, token_masks
from models.outputs import SegOutputs

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "data", "golden")


def parse(method_cls, argv, **extra):
    parser = argparse.ArgumentParser()
    method_cls.add_args(parser)
    args = parser.parse_args(argv)
    defaults = dict(dataset="citys", num_classes=19, ignore_index=-1, student_model="deeplabv3",
                    student_backbone="resnet18", teacher_model="deeplabv3", teacher_backbone="resnet101")
    defaults.update(extra)
    for k, v in defaults.items():
        setattr(args, k, v)
    return args


STUDENT_INFO = {"logits": 19, "aux_logits": 19, "head_feat": 8}
TEACHER_INFO = {"logits": 19, "aux_logits": 19, "head_feat": 6}


def cirkd_ctx(batch=2, classes=3, s_ch=5, t_ch=6, h=5, w=6, seed=0, labels=None, draws=None, generator=None):
    g = torch.Generator().manual_seed(seed)
    student = SegOutputs([torch.randn(batch, classes, h, w, generator=g, requires_grad=True),
                          torch.randn(batch, s_ch, h, w, generator=g, requires_grad=True)], ["logits", "head_feat"])
    teacher = SegOutputs([torch.randn(batch, classes, h, w, generator=g),
                          torch.randn(batch, t_ch, h, w, generator=g)], ["logits", "head_feat"])
    if labels is None:
        labels = torch.randint(-1, classes, (batch, 4 * h, 4 * w), generator=g)
    extra = {}
    if draws is not None:
        extra["cirkd_draws"] = draws
    return StepContext(student=student, teacher=teacher, labels=labels, iteration=1, max_iterations=10, extra=extra,
                       generator=generator)


def small_cirkd(**kw):
    params = dict(num_classes=3, s_channels=5, t_channels=6, pixel_memory_size=20, region_memory_size=4,
                  pixel_contrast_size=5, region_contrast_size=2)
    params.update(kw)
    return CIRKD(**params)


def test_registered():
    assert {"cirkd", "maskd", "maskd_tokens"} <= set(available_methods())


# ----------------------------------------------------------------------------------------- CIRKD
def test_cirkd_from_args_citys_defaults():
    m = CIRKD.from_args(parse(CIRKD, []), STUDENT_INFO, TEACHER_INFO)
    assert m.weights == {"kd": 1.0, "minibatch_pixel": 1.0, "memory_pixel": 0.1, "memory_region": 0.1}
    assert m.kd_temperature == 1.0 and m.minibatch.tau == 0.1 and m.minibatch.pooling == "none"
    mem = m.memory
    assert (mem.pixel_memory_size, mem.region_memory_size) == (20000, 2000)
    assert (mem.pixel_contrast_size, mem.region_contrast_size) == (4096 // 19 + 1, 1024 // 19 + 1) == (216, 54)
    assert mem.tau == 0.1 and mem.kd_tau == 1.0 and mem.pixel_update_freq == 16 and not mem.fix_pixel_enqueue
    assert tuple(mem.pixel_queue.shape) == (19, 20000, 6) and tuple(mem.region_queue.shape) == (19, 2000, 6)
    assert mem.project_head[0].weight.shape == (6, 8, 1, 1)


def test_cirkd_from_args_voc_segformer_and_overrides():
    m = CIRKD.from_args(parse(CIRKD, [], dataset="voc", num_classes=21), STUDENT_INFO, TEACHER_INFO)
    assert m.weights["memory_pixel"] == 0.01 and m.weights["memory_region"] == 0.01
    assert m.memory.pixel_contrast_size == 4096 // 21 + 1
    seg = CIRKD.from_args(parse(CIRKD, [], student_model="segformer"), STUDENT_INFO, TEACHER_INFO)
    assert seg.memory.pixel_memory_size == 2000 and seg.minibatch.pooling == "avg2x2"
    argv = ["--lambda-memory-region", "0", "--lambda-kd", "0", "--fix-pixel-enqueue", "--group-size", "2",
            "--minibatch-pooling", "auto4x4", "--pixel-memory-size", "300", "--pixel-contrast-size", "190"]
    m = CIRKD.from_args(parse(CIRKD, argv), STUDENT_INFO, TEACHER_INFO)
    assert set(m.weights) == {"minibatch_pixel", "memory_pixel"}
    assert m.memory.fix_pixel_enqueue and m.minibatch.group_size == 2 and m.minibatch.pooling == "auto4x4"
    assert m.memory.pixel_contrast_size == 11 and m.memory.pixel_memory_size == 300
    names = set(m.state_dict())
    assert "memory.pixel_queue" in names and not any("region" in n for n in names)
    off = CIRKD.from_args(parse(CIRKD, ["--lambda-memory-pixel", "0", "--lambda-memory-region", "0"]),
                          STUDENT_INFO, TEACHER_INFO)
    assert off.memory is None and list(off.parameters()) == []


def test_cirkd_bad_sizes_are_clear():
    with pytest.raises(ValueError, match="pixel-contrast-size"):
        small_cirkd(pixel_contrast_size=50)
    with pytest.raises(ValueError, match="minibatch-pooling"):
        small_cirkd(pooling="max")
    with pytest.raises(ValueError, match="head_feat"):
        CIRKD.from_args(parse(CIRKD, []), {"logits": 19}, TEACHER_INFO)


def test_cirkd_queue_buffers_in_state_dict_and_restored():
    torch.manual_seed(0)
    a = small_cirkd().train()
    a(cirkd_ctx(seed=1))
    state = a.state_dict()
    for name in ("pixel_queue", "region_queue", "pixel_queue_ptr", "region_queue_ptr"):
        assert "memory." + name in state
    assert int(state["memory.pixel_queue_ptr"].sum()) > 0
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    torch.manual_seed(123)
    b = small_cirkd().train()
    assert not torch.equal(b.memory.pixel_queue, a.memory.pixel_queue)
    b.load_state_dict(torch.load(buf, weights_only=True))
    for name in ("pixel_queue", "region_queue", "pixel_queue_ptr", "region_queue_ptr"):
        assert torch.equal(getattr(a.memory, name), getattr(b.memory, name))
    ta = a(cirkd_ctx(seed=2, generator=torch.Generator().manual_seed(5)))
    tb = b(cirkd_ctx(seed=2, generator=torch.Generator().manual_seed(5)))
    for k in ta:
        assert torch.allclose(ta[k], tb[k], rtol=1e-6, atol=1e-7), k


def test_cirkd_all_ignored_gives_zero():
    m = small_cirkd().train()
    ctx = cirkd_ctx(labels=torch.full((2, 20, 24), -1, dtype=torch.long))
    before = m.memory.pixel_queue.clone()
    terms = m(ctx)
    assert terms["memory_pixel"].item() == 0.0 and terms["memory_region"].item() == 0.0
    sum(terms.values()).backward()
    assert torch.isfinite(ctx.student.head_feat.grad).all()
    assert all(p.grad is not None and float(p.grad.abs().sum()) == 0 for p in m.memory.parameters())
    assert torch.equal(before, m.memory.pixel_queue)


def test_cirkd_all_ignored_golden_case_with_zero_instead_of_nan():
    case = load_case(os.path.join(GOLDEN, "cirkd", "memory_all_ignored.pt"))
    result = run_case(case)
    assert all(torch.isnan(v) for v in case["outputs"].values())   # the official NaN
    assert all(v.item() == 0.0 for v in result["outputs"].values())
    for section in ("grads", "state_after"):
        for name, ref in case[section].items():
            assert torch.allclose(result[section][name].to(ref.dtype), ref, rtol=1e-6, atol=1e-9), name


def official_order_draws(labels_small, classes, gen, pixel_memory, region_memory, k_p, k_r, freq=16):
    """The draws in the official order: per (image, present class) then I_p, then I_r."""
    enqueue = {}
    for b in range(labels_small.shape[0]):
        flat = labels_small[b].reshape(-1)
        for k in torch.unique(flat).tolist():
            if k == -1:
                continue
            n = int((flat == k).sum())
            enqueue["b%d_c%d" % (b, k)] = torch.randperm(n, generator=gen)[:min(n, freq)]
    return {"enqueue_pixel_pos": enqueue,
            "pixel_index": torch.randperm(pixel_memory, generator=gen)[:k_p],
            "region_index": torch.randperm(region_memory, generator=gen)[:k_r]}


def test_cirkd_injected_draws_match_generator_draws_and_are_deterministic():
    torch.manual_seed(0)
    a = small_cirkd().train()
    b = small_cirkd().train()
    b.load_state_dict(a.state_dict())
    c = small_cirkd().train()
    c.load_state_dict(a.state_dict())
    ctx = cirkd_ctx(seed=3, generator=torch.Generator().manual_seed(7))
    small = torch.nn.functional.interpolate(ctx.labels[:, None].float(), size=(5, 6), mode="nearest")[:, 0].long()
    draws = official_order_draws(small, 3, torch.Generator().manual_seed(7), 20, 4, 5, 2)
    ta = a(ctx)
    tb = b(cirkd_ctx(seed=3, draws=draws))
    tc = c(cirkd_ctx(seed=3, draws=draws))
    for k in ta:
        assert torch.equal(ta[k], tb[k]) and torch.equal(tb[k], tc[k]), k
    assert torch.equal(a.memory.pixel_queue, b.memory.pixel_queue)
    assert torch.equal(a.memory.region_queue_ptr, b.memory.region_queue_ptr)
    d = small_cirkd().train()
    d.load_state_dict(c.state_dict())
    bad = dict(draws, pixel_index=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="key index"):
        d(cirkd_ctx(seed=3, draws=bad))


def test_cirkd_fix_pixel_enqueue_takes_pixels_of_the_class():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 3, 3] = 1                                   # class 1 only at the last position
    t_feat = torch.randn(1, 6, 4, 4)
    expected = torch.nn.functional.normalize(t_feat[0, :, 3, 3], dim=0)
    for fix in (False, True):
        m = small_cirkd(num_classes=2, lambda_memory_region=0, fix_pixel_enqueue=fix).train()
        m.memory(torch.randn(1, 5, 4, 4), t_feat, labels, enqueue_pixel_pos={"b0_c0": torch.arange(15), "b0_c1": torch.tensor([0])},
                 pixel_index=torch.arange(5))
        row = m.memory.pixel_queue[1, 0]
        assert torch.allclose(row, expected) == fix     # the official code enqueues position 0 instead


def test_minibatch_group_size_and_float32_under_autocast():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 5, 3, 4, generator=g), torch.randn(4, 6, 3, 4, generator=g)
    whole = CIRKDMiniBatchLoss(0.1)
    grouped = CIRKDMiniBatchLoss(0.1, group_size=2)
    expected = (whole(s[:2], t[:2]) + whole(s[2:], t[2:])) / 2
    assert torch.allclose(grouped(s, t), expected)
    assert not torch.allclose(whole(s, t), expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = whole(s.bfloat16(), t.bfloat16())
    assert value.dtype == torch.float32
    assert torch.allclose(value, whole(s.bfloat16().float(), t.bfloat16().float()), rtol=1e-5)


# ----------------------------------------------------------------------------------------- MasKD
def test_maskd_stage1_export_then_stage2_loads(tmp_path):
    args = parse(MasKDTokens, [], num_classes=5)
    stage1 = MasKDTokens.from_args(args, {}, {"logits": 5, "aux_logits": 5, "head_feat": 4})
    assert stage1.teacher_mode == "train" and stage1.trains_student is False
    params = list(stage1.student_optimizer_parameters())
    assert len(params) == 1 and params[0] is stage1.mask_token and tuple(params[0].shape) == (8, 5)
    g = torch.Generator().manual_seed(0)
    teacher = SegOutputs([torch.randn(2, 5, 4, 4, generator=g), torch.randn(2, 5, 4, 4, generator=g)],
                         ["logits", "aux_logits"])
    labels = torch.randint(-1, 5, (2, 8, 8), generator=g)
    ctx = StepContext(student=None, teacher=teacher, labels=labels, iteration=1, max_iterations=1)
    terms = stage1(ctx)
    assert set(terms) == {"task", "dice", "teacher_aux"}
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)
    before = stage1.mask_token.detach().clone()
    sum(terms.values()).backward()
    opt.step()
    assert not torch.equal(before, stage1.mask_token.detach())

    path = str(tmp_path / "tokens" / "maskd_tokens.pth")
    stage1.export_state(path)
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"mask_token"} and saved["mask_token"].dtype == torch.float32

    args2 = parse(MasKD, ["--pretrained-mask", path], num_classes=5)
    stage2 = MasKD.from_args(args2, {"logits": 5, "aux_logits": 5}, {"logits": 5, "aux_logits": 5})
    assert torch.equal(stage2.mask_token, stage1.mask_token.detach())
    assert list(stage2.student_optimizer_parameters()) == [] and "mask_token" in stage2.state_dict()
    student = SegOutputs([torch.randn(2, 5, 4, 4, requires_grad=True), torch.randn(2, 5, 4, 4, requires_grad=True)],
                         ["logits", "aux_logits"])
    out = stage2(StepContext(student=student, teacher=teacher, labels=labels, iteration=1, max_iterations=1))
    assert set(out) == {"maskd", "maskd_aux"}
    sum(out.values()).backward()
    assert student.logits.grad is not None and stage2.mask_token.grad is None
    masks = token_masks(stage2.mask_token, teacher.logits)
    assert masks.shape == (2, 8, 4, 4) and bool(((masks > 0) & (masks < 1)).all())

    no_aux = MasKD.from_args(args2, {"logits": 5}, {"logits": 5, "aux_logits": 5})
    assert not no_aux.use_aux
    assert set(no_aux(StepContext(student=SegOutputs([student.logits], ["logits"]), teacher=teacher,
                                  labels=labels, iteration=1, max_iterations=1))) == {"maskd"}


def test_maskd_token_file_errors(tmp_path):
    with pytest.raises(ValueError, match="--pretrained-mask"):
        MasKD.from_args(parse(MasKD, [], num_classes=5), {"logits": 5}, {"logits": 5})
    with pytest.raises(FileNotFoundError, match="--pretrained-mask"):
        load_token_file(str(tmp_path / "missing.pth"), 8, 5)
    wrong_shape = str(tmp_path / "wrong_shape.pth")
    torch.save({"mask_token": torch.zeros(8, 19)}, wrong_shape)
    with pytest.raises(ValueError, match=r"shape \(8, 19\).*\(8, 5\)"):
        MasKD.from_args(parse(MasKD, ["--pretrained-mask", wrong_shape], num_classes=5), {"logits": 5}, {"logits": 5})
    with pytest.raises(ValueError, match=r"\(4, 19\)"):
        load_token_file(wrong_shape, 4, 19)
    wrong_keys = str(tmp_path / "wrong_keys.pth")
    torch.save({"mask_module.mask_token": torch.zeros(8, 5)}, wrong_keys)
    with pytest.raises(ValueError, match="exactly"):
        load_token_file(wrong_keys, 8, 5)
    garbage = str(tmp_path / "garbage.pth")
    with open(garbage, "w") as f:
        f.write("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable token file"):
        load_token_file(garbage, 8, 5)


def test_maskd_official_tokens_file_format_loads(tmp_path):
    case = load_case(os.path.join(GOLDEN, "maskd", "loss_official_tokens_aux.pt"))
    path = str(tmp_path / "deeplabv3_resnet101_citys_best_model.pth")
    torch.save({"mask_token": case["params"]["mask_token"].float()}, path)
    tokens = load_token_file(path, 8, 19)
    assert torch.equal(tokens, case["params"]["mask_token"].float())


@pytest.mark.parametrize("name", ["loss_random_tokens", "loss_official_tokens_aux", "mask_module_stage1"])
def test_maskd_golden_intermediates(name):
    case = load_case(os.path.join(GOLDEN, "maskd", name + ".pt"))
    result = run_case(case)
    for key, ref in case["intermediates"].items():
        assert torch.allclose(result["intermediates"][key], ref, rtol=1e-6, atol=1e-10), key
