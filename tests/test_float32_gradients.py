"""Every method's float32 gradients agree with its float64 gradients at realistic magnitudes.

Float64 golden cases cannot see float32 precision loss (e.g. a logsumexp over L1 distances / tau,
scores ~1e3). Here each registered method runs twice on the same inputs, once in float32 and once
in float64 (the method's own parameters copied), with its official defaults on Cityscapes-like
shapes: batch 2, crop 256x512 (stride-8 maps 32x64, 19 classes), a ResNet-18 student and a
ResNet-101 teacher (c4 512 / 2048 channels), post-ReLU features of size ~1 and logits of size ~5.
Every gradient (student outputs and method parameters) must agree to 1e-4 of the largest gradient,
and each leaf that carries gradient (>= 1e-3 of the largest) to 1e-3 of its own largest entry.
"""
import copy

import pytest
import torch

import losses
import train_kd
from models.outputs import SegOutputs

B, CROP, STRIDE, K = 2, (256, 512), 8, 19
STUDENT = {"logits": K, "aux_logits": K, "c1": 64, "c2": 128, "c3": 256, "c4": 512, "head_feat": 128}
TEACHER = {"logits": K, "aux_logits": K, "c1": 256, "c2": 512, "c3": 1024, "c4": 2048, "head_feat": 256}
STAGE_STRIDE = {"c1": 4}
# Af-DCD's projector is two 3x3 convs at the teacher's channels: 2048 would cost minutes per dtype on
# 2 cores, so the method-level run uses a 256-channel teacher c4; its contrastive term is checked at
# the full 2048 channels in test_afdcd_contrastive_term_at_full_width below.
SMALLER = {"af_dcd": {"c4": 256}}
EXTRA_FLAGS = {"skd": ["--lambda-adv", "0", "--lambda-d", "0"], "ifvd": ["--lambda-adv", "0", "--lambda-d", "0"],
               "cwd": ["--lambda-adv", "0", "--lambda-d", "0"]}
SKIP_ADV = "the adversarial term needs 64x64 logits (512x512 crops); its D runs in float32 by design"


def fake_outputs(info, generator, scale_logits):
    names, values, extras = [], [], {}
    h, w = CROP[0] // STRIDE, CROP[1] // STRIDE
    for name, channels in info.items():
        s = STAGE_STRIDE.get(name, STRIDE)
        size = (CROP[0] // s, CROP[1] // s)
        if name in ("logits", "aux_logits"):
            t = torch.randn(B, channels, h, w, generator=generator, dtype=torch.float64) * scale_logits
        else:
            t = torch.relu(torch.randn(B, channels, *size, generator=generator, dtype=torch.float64)) * 1.5
        if name in ("logits", "aux_logits", "c4", "head_feat"):
            names.append(name)
            values.append(t)
        else:
            extras[name] = t
    return SegOutputs(values, names, extras)


def cast(outputs, dtype, requires_grad):
    values = [v.detach().to(dtype).requires_grad_(requires_grad) for v in outputs]
    extras = {k: v.detach().to(dtype).requires_grad_(requires_grad) for k, v in outputs.extras.items()}
    return SegOutputs(values, outputs.names, extras)


def method_args(name, tmp_path):
    argv = ["--kd-method", name, "--dataset", "citys", "--crop-size", str(CROP[0]), str(CROP[1]),
            "--batch-size", str(B), "--max-iterations", "100"] + EXTRA_FLAGS.get(name, [])
    if name == "maskd":
        tokens = tmp_path / "tokens.pth"
        torch.save({"mask_token": torch.randn(8, K, generator=torch.Generator().manual_seed(3)) * 0.01}, tokens)
        argv += ["--pretrained-mask", str(tokens)]
    if name == "tf_kd_self":
        argv += ["--teacher-model", "deeplabv3", "--teacher-backbone", "resnet18"]
    return train_kd.parse_args(argv)


def grads_for(method, student, teacher, labels, dtype, keep_mask):
    method = method.to(dtype)
    s = cast(student, dtype, True) if student is not None else None
    t = cast(teacher, dtype, method.trains_student is False) if teacher is not None else None
    ctx = losses.StepContext(student=s, labels=labels, iteration=90, max_iterations=100, teacher=t,
                             teachers=[t] if t is not None else [], ignore_index=-1,
                             generator=torch.Generator().manual_seed(7))
    ctx.extra["afdcd_keep_mask"] = keep_mask.to(dtype)
    terms = dict(method(ctx))
    terms.update(method.task_loss(ctx))
    total = sum(terms.values())
    leaves = {}
    for owner, outs in (("student", s), ("teacher", t)):
        if outs is not None:
            leaves.update({"%s.%s" % (owner, k): v for k, v in outs.as_dict().items() if v.requires_grad})
    leaves.update({"param." + k: p for k, p in method.named_parameters() if p.requires_grad})
    grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True)
    return {k: g for k, g in zip(leaves, grads) if g is not None}, float(total.detach())


# Methods whose step runs networks on several streams (CPS's second branch, MGD's pseudo labels on
# mixed images) cannot be fed fake outputs; MGD's loss terms are checked below, CPS's are plain CE.
NETWORK_METHODS = {"cps", "mgd", "dkd"}     # dkd also needs --incremental: its loss is checked below
METHODS = sorted(set(losses.available_methods()) - NETWORK_METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_float32_gradients_match_float64(name, tmp_path):
    args = method_args(name, tmp_path)
    spec = args.method_spec
    generator = torch.Generator().manual_seed(0)
    student_info = dict(STUDENT)
    teacher_info = dict(STUDENT if name == "tf_kd_self" else TEACHER, **SMALLER.get(name, {}))
    student = fake_outputs(student_info, generator, 5.0) if spec.trains_student else None
    teacher = fake_outputs(teacher_info, generator, 6.0) if spec.teachers_needed(args) else None
    labels = torch.randint(0, K, (B,) + CROP, generator=generator)
    labels[:, :16] = -1
    keep_mask = (torch.rand(B, 1, CROP[0] // STRIDE, CROP[1] // STRIDE, generator=generator) > 0.75).double()
    torch.manual_seed(0)
    method = spec.build(args, student_info if spec.trains_student else None,
                        [teacher_info] if teacher is not None else [])
    method.set_task_criterion(losses.TaskLoss("ce", 0.4, -1))
    g64, loss64 = grads_for(copy.deepcopy(method), student, teacher, labels, torch.float64, keep_mask)
    g32, loss32 = grads_for(copy.deepcopy(method), student, teacher, labels, torch.float32, keep_mask)
    assert g64 and g64.keys() == g32.keys()
    assert loss32 == pytest.approx(loss64, rel=1e-4)
    largest = max(float(g.abs().max()) for g in g64.values())
    assert largest > 0
    for key, ref in g64.items():
        error = float((g32[key].double() - ref).abs().max())
        assert error <= 1e-4 * largest, "%s: float32 gradient of %s off by %.3g of the largest gradient" % (
            name, key, error / largest)
        scale = float(ref.abs().max())
        if scale >= 1e-3 * largest:          # a leaf that carries gradient: also exact on its own scale
            assert error <= 1e-3 * scale, "%s: float32 gradient of %s off by %.3g of its largest entry" % (
                name, key, error / scale)


def test_afdcd_contrastive_term_at_full_width():
    """The omni-contrastive term on DeepLabV3-R101-sized maps: 2048 channels, 64x128 pooled by 4."""
    from losses.af_dcd import AfDCD, omni_contrastive_loss
    assert AfDCD(16, 32).contrast_dtype == torch.float64          # the method's default
    generator = torch.Generator().manual_seed(0)
    pooled = (B, 2048, 16, 32)
    teacher = torch.relu(torch.randn(*pooled, generator=generator, dtype=torch.float64)) * 1.5
    # early in training: the regenerated map is not yet close to the teacher's (a non-saturated positive)
    student = torch.relu(torch.randn(*pooled, generator=generator, dtype=torch.float64)) * 1.5
    grads = {}
    for dtype in (torch.float64, torch.float32):
        pred = student.to(dtype).requires_grad_()
        loss = omni_contrastive_loss(pred, teacher.to(dtype), (4, 4), 16, 0.07, compute_dtype=torch.float64)
        grads[dtype] = torch.autograd.grad(loss, pred)[0].double()
    scale = float(grads[torch.float64].abs().max())
    error = float((grads[torch.float32] - grads[torch.float64]).abs().max())
    assert error <= 1e-4 * scale, error / scale
    # and the mean relative error on the entries that carry the gradient stays small
    big = grads[torch.float64].abs() > 1e-3 * scale
    relative = ((grads[torch.float32] - grads[torch.float64]).abs() / grads[torch.float64].abs())[big]
    assert float(relative.mean()) < 1e-3


def test_mgd_float32_gradients_at_realistic_magnitudes():
    """MGD's terms at Cityscapes-like sizes: 2 x 19 x 200x200 logits (size ~5), 256 x 50x50 features."""
    from losses.cutmix import step_masks
    from losses.mgd import mgd_loss
    generator = torch.Generator().manual_seed(0)
    shape, feat = (B, K, 200, 200), (B, 256, 50, 50)

    def rand(size, scale):
        return torch.randn(*size, generator=generator, dtype=torch.float64) * scale

    student = {"s_logits_mix": rand(shape, 5.0), "s_feat_mix": torch.relu(rand(feat, 1.5)), "s_logits_lab": rand(shape, 5.0)}
    teacher = {name: rand(shape, 6.0) for name in ("tw_logits_u0", "tw_logits_u1", "td_logits_u0", "td_logits_u1",
                                                   "tw_logits_mix", "td_logits_mix", "tw_logits_lab", "td_logits_lab")}
    teacher["tw_feat_mix"] = torch.relu(rand(feat, 1.5))
    labels = torch.randint(0, K, (B, 200, 200), generator=generator)
    labels[:, :10] = -1
    mask = step_masks(B, (200, 200), 0, 1, 0, 0, 1)
    grads = {}
    for dtype in (torch.float64, torch.float32):
        leaves = {k: v.to(dtype).requires_grad_() for k, v in student.items()}
        out = mgd_loss(leaves["s_logits_mix"], leaves["s_feat_mix"], leaves["s_logits_lab"], labels, mask.to(dtype),
                       lambda_1=0.001, lambda_2=100.0, ignore_index=-1,
                       **{k: v.to(dtype) for k, v in teacher.items()})
        grads[dtype] = dict(zip(leaves, torch.autograd.grad(out["student_total"], list(leaves.values()))))
    largest = max(float(g.abs().max()) for g in grads[torch.float64].values())
    for key, ref in grads[torch.float64].items():
        error = float((grads[torch.float32][key].double() - ref).abs().max())
        assert error <= 1e-4 * largest and error <= 1e-3 * float(ref.abs().max()), (key, error / largest)


def test_dkd_float32_gradients_at_realistic_magnitudes():
    """DKD's terms at VOC-like sizes: 2 x (1 + 16 + 1) x 128x128 logits (size ~5), parts at 32x32 (size ~20)."""
    from losses.dkd import dkd_loss
    generator = torch.Generator().manual_seed(0)

    def rand(size, scale):
        return torch.randn(*size, generator=generator, dtype=torch.float64) * scale

    student = {"logit": rand((B, 18, 128, 128), 5.0), "pos": rand((B, 17, 32, 32), 20.0).abs(),
               "neg": -rand((B, 17, 32, 32), 20.0).abs()}
    teacher = {"logit_old": rand((B, 17, 128, 128), 5.0), "pos_old": rand((B, 16, 32, 32), 20.0).abs(),
               "neg_old": -rand((B, 16, 32, 32), 20.0).abs()}
    label = torch.randint(0, 18, (B, 128, 128), generator=generator)
    label[label < 16] = 0
    grads = {}
    for dtype in (torch.float64, torch.float32):
        leaves = {k: v.to(dtype).requires_grad_() for k, v in student.items()}
        out = dkd_loss(leaves["logit"], label, 16, 1, 1.0, logit_old=teacher["logit_old"].to(dtype),
                       pos=leaves["pos"], neg=leaves["neg"], pos_old=teacher["pos_old"].to(dtype),
                       neg_old=teacher["neg_old"].to(dtype))
        grads[dtype] = dict(zip(leaves, torch.autograd.grad(out["total"], list(leaves.values()))))
    largest = max(float(g.abs().max()) for g in grads[torch.float64].values())
    for key, ref in grads[torch.float64].items():
        error = float((grads[torch.float32][key].double() - ref).abs().max())
        assert error <= 1e-4 * largest and error <= 1e-3 * float(ref.abs().max()), (key, error / largest)
