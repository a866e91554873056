"""Teacher-free methods: Tf-FD, Tf-KD (self / reg), SAD. Golden numbers are in tests/test_golden.py."""
import argparse

import pytest
import torch
import torch.nn.functional as F

import losses
from losses.base import StepContext
from losses.sad import SAD, SADLoss, sad_attention
from losses.task import SegCrossEntropyLoss, upsample_to
from losses.tf_fd import TfFD, TfFDLoss, tffd_inter, tffd_intra
from losses.tf_kd import TfKD, TfKDLoss, TfKDReg, TfKDSelf
from models.outputs import SegOutputs

RESNET18_INFO = {"logits": 5, "aux_logits": 5, "c1": 8, "c2": 16, "c3": 32, "c4": 64}


def make_args(cls, argv=(), **extra):
    parser = argparse.ArgumentParser()
    cls.add_args(parser)
    args = parser.parse_args(list(argv))
    base = dict(dataset="citys", num_classes=5, ignore_index=-1, max_iterations=1200,
                student_model="deeplabv3", student_backbone="resnet18")
    base.update(extra)
    for k, v in base.items():
        setattr(args, k, v)
    return args


def fake_outputs(seed=0, num_classes=5, requires_grad=True, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    shapes = {"c1": (2, 8, 8, 12), "c2": (2, 16, 4, 6), "c3": (2, 32, 4, 6), "c4": (2, 64, 4, 6)}
    stages = {k: torch.rand(s, generator=g).to(dtype).requires_grad_(requires_grad) for k, s in shapes.items()}
    logits = torch.randn(2, num_classes, 4, 6, generator=g).to(dtype).requires_grad_(requires_grad)
    aux = torch.randn(2, num_classes, 4, 6, generator=g).to(dtype).requires_grad_(requires_grad)
    return SegOutputs([logits, aux], ["logits", "aux_logits"], extras=stages)


def make_labels(seed=1, num_classes=5, ignore=-1):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (2, 32, 48), generator=g)
    labels[torch.rand(labels.shape, generator=g) < 0.25] = ignore
    return labels


def ctx_for(student, iteration=1, max_iterations=1200, teacher=None, labels=None):
    return StepContext(student=student, labels=make_labels() if labels is None else labels,
                       iteration=iteration, max_iterations=max_iterations, teacher=teacher,
                       teachers=[teacher] if teacher is not None else [], ignore_index=-1)


# ---------------------------------------------------------------- registry and defaults

def test_registered_with_teacher_requirements():
    for name in ("tf_fd", "sad", "tf_kd", "tf_kd_self", "tf_kd_reg"):
        assert name in losses.available_methods()
    assert TfFD.num_teachers == 0 and TfFD.student_stages
    assert SAD.num_teachers == 0 and SAD.student_stages
    assert TfKDSelf.num_teachers == 1 and TfKDReg.num_teachers == 0
    for spec, argv, want in (("tf_kd", [], 0), ("tf_kd", ["--tf-kd-variant", "self"], 1),
                             ("tf_kd", ["--tf-kd-variant", "reg"], 0), ("tf_kd_self", [], 1),
                             ("tf_kd_reg", [], 0), ("tf_fd+sad", [], 0), ("sad+tf_kd_self", [], 1)):
        args = make_args(TfKD, argv, kd_method=spec)
        assert losses.teachers_needed(args) == want, (spec, argv)


def test_tf_fd_defaults_and_flags():
    method = TfFD.from_args(make_args(TfFD), RESNET18_INFO, None)
    assert (method.loss.lambda_inter, method.loss.lambda_intra) == (5e-4, 8e-4)
    assert method.loss.form == "train_kd" and method.stages == ["c2", "c3", "c4"]
    assert method.warmup_iterations == 100           # 1/12 of 1200
    args = make_args(TfFD, ["--tf-fd-form", "readme", "--tf-fd-stages", "c1,c2,c3", "--lambda-tf-fd-inter", "0.01",
                            "--tf-fd-warmup-fraction", "0"])
    method = TfFD.from_args(args, RESNET18_INFO, None)
    assert method.loss.form == "readme" and method.stages == ["c1", "c2", "c3"]
    assert method.loss.lambda_inter == 0.01 and method.warmup_iterations == 0
    with pytest.raises(ValueError, match="even"):
        TfFD.from_args(make_args(TfFD), dict(RESNET18_INFO, c3=33), None)
    with pytest.raises(ValueError, match="--tf-fd-stages"):
        TfFD.from_args(make_args(TfFD, ["--tf-fd-stages", "c2,layer9"]), RESNET18_INFO, None)


def test_sad_defaults_and_flags():
    method = SAD.from_args(make_args(SAD, max_iterations=40000), RESNET18_INFO, None)
    assert method.loss.weight == 0.1 and method.stages == ["c1", "c2", "c3", "c4"]
    assert method.start_iteration == 26667 and not method.loss.detach_target
    args = make_args(SAD, ["--sad-start-fraction", "0", "--sad-detach-target", "--sad-stages", "c2,c4",
                           "--lambda-sad", "0.5"])
    method = SAD.from_args(args, RESNET18_INFO, None)
    assert method.start_iteration == 0 and method.loss.detach_target
    assert method.stages == ["c2", "c4"] and method.loss.weight == 0.5
    with pytest.raises(ValueError, match="--sad-start-fraction"):
        SAD.from_args(make_args(SAD, ["--sad-start-fraction", "1.5"]), RESNET18_INFO, None)


@pytest.mark.parametrize("cls,argv,backbone,want", [
    (TfKD, [], "resnet18", ("reg", 0.1, 20.0, 100.0)),
    (TfKD, ["--tf-kd-variant", "self"], "resnet18", ("self", 0.95, 6.0, 50.0)),
    (TfKDSelf, [], "resnet18", ("self", 0.95, 6.0, 50.0)),
    (TfKDReg, [], "mobilenetv2", ("reg", 0.95, 40.0, 1.0)),
    (TfKDSelf, [], "mobilenetv2", ("self", 0.95, 20.0, 1.0)),
    (TfKD, ["--tf-kd-alpha", "0.5", "--tf-kd-temperature", "4", "--tf-kd-multiplier", "2"], "resnet18",
     ("reg", 0.5, 4.0, 2.0)),
])
def test_tf_kd_defaults(cls, argv, backbone, want):
    method = cls.from_args(make_args(cls, argv, student_backbone=backbone, ignore_index=-1), RESNET18_INFO,
                           RESNET18_INFO)
    got = (method.loss.variant, method.loss.alpha, method.loss.temperature, method.loss.multiplier)
    assert got == want
    assert method.loss.correct_prob == 0.99 and method.loss.ignore_index == -1
    assert method.num_teachers == (1 if want[0] == "self" else 0)


def test_tf_kd_variant_conflict_and_class_mismatch():
    with pytest.raises(ValueError, match="conflicts"):
        TfKDReg.from_args(make_args(TfKDReg, ["--tf-kd-variant", "self"]), RESNET18_INFO, None)
    with pytest.raises(ValueError, match="classes"):
        TfKDSelf.from_args(make_args(TfKDSelf), RESNET18_INFO, dict(RESNET18_INFO, logits=7))


# ---------------------------------------------------------------- Tf-FD

def test_tf_fd_forward_backward_uses_only_chosen_stages():
    method = TfFD.from_args(make_args(TfFD, ["--tf-fd-warmup-fraction", "0"]), RESNET18_INFO, None)
    student = fake_outputs()
    terms = method(ctx_for(student, iteration=5))
    assert set(terms) == {"tf_fd_inter", "tf_fd_intra"}
    want = method.loss([student.c2, student.c3, student.c4])["loss"]
    assert torch.allclose(sum(terms.values()), want)
    sum(terms.values()).backward()
    assert student.c1.grad is None and student.logits.grad is None
    for name in ("c2", "c3", "c4"):
        grad = getattr(student, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_tf_fd_warmup_is_linear_then_flat():
    method = TfFD.from_args(make_args(TfFD), RESNET18_INFO, None)   # warm-up 100 of 1200
    student = fake_outputs(requires_grad=False)
    full = sum(method(ctx_for(student, iteration=100)).values())
    assert torch.allclose(sum(method(ctx_for(student, iteration=1)).values()), full / 100)
    assert torch.allclose(sum(method(ctx_for(student, iteration=50)).values()), full / 2)
    assert torch.allclose(sum(method(ctx_for(student, iteration=1000)).values()), full)


def test_tf_fd_forms_and_helpers():
    g = torch.Generator().manual_seed(3)
    feats = [torch.rand(2, 8, 8, 12, generator=g).double(), torch.rand(2, 16, 4, 6, generator=g).double(),
             torch.rand(2, 32, 2, 3, generator=g).double()]
    train_kd = TfFDLoss(5e-4, 8e-4, "train_kd")(feats)
    readme = TfFDLoss(5e-4, 8e-4, "readme")(feats)
    assert torch.allclose(train_kd["loss"], 5e-4 * sum(train_kd["inter"]) / 3 + 8e-4 * sum(train_kd["intra"]) / 3)
    assert torch.allclose(readme["loss"], 8e-4 * (sum(readme["inter"]) + sum(readme["intra"])))
    # non-square pooling to (H_t, W_t) equals train_kd.py's avg_pool2d(kernel)
    manual = F.mse_loss(F.avg_pool2d(feats[0], 4)[:, :8], feats[2][:, :8])
    assert torch.allclose(tffd_inter(feats[0], feats[2]), manual)
    # salience of a map with k equal non-zero pixels is sqrt(k)/HW: channel order 2, 0, 3, 1 here
    hand = torch.zeros(1, 4, 4, 4, dtype=torch.float64)
    hand[0, 2] = 3.0
    hand[0, 0].view(-1)[:6] = 1.0
    hand[0, 3].view(-1)[:3] = 5.0
    hand[0, 1].view(-1)[7] = 2.0
    assert torch.allclose(tffd_intra(hand), F.mse_loss(hand[:, [2, 0]], hand[:, [3, 1]]))
    # the ranking makes the term invariant to the channel order
    perm = torch.randperm(16, generator=g)
    assert torch.allclose(tffd_intra(feats[1][:, perm]), tffd_intra(feats[1]))
    with pytest.raises(ValueError, match="even"):
        tffd_intra(torch.rand(1, 3, 2, 2))


def test_tf_fd_missing_stage_names_the_field():
    method = TfFD.from_args(make_args(TfFD), RESNET18_INFO, None)
    student = SegOutputs([torch.zeros(1, 5, 4, 4)], ["logits"])
    with pytest.raises(KeyError, match="c2"):
        method(ctx_for(student))


# ---------------------------------------------------------------- SAD

def test_sad_off_before_two_thirds_and_on_after():
    method = SAD.from_args(make_args(SAD, max_iterations=30), RESNET18_INFO, None)
    assert method.start_iteration == 20
    student = fake_outputs()
    off = method(ctx_for(student, iteration=19, max_iterations=30))["sad"]
    assert float(off.detach()) == 0.0 and off.requires_grad
    off.backward()
    assert float(student.c4.grad.abs().sum()) == 0.0 and student.c1.grad is None

    student = fake_outputs()
    on = method(ctx_for(student, iteration=20, max_iterations=30))["sad"]
    want = SADLoss(0.1)([student.c1, student.c2, student.c3, student.c4])["loss"]
    assert on.item() > 0 and torch.allclose(on, want)
    on.backward()
    for s in ("c1", "c2", "c3", "c4"):
        grad = getattr(student, s).grad
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_sad_attention_and_detach():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 4, 6, generator=g)
    att = sad_attention(x, (8, 12))
    assert att.shape == (2, 96) and torch.allclose(att.sum(1), torch.ones(2))
    same = sad_attention(x, (4, 6))
    assert torch.allclose(same, F.softmax(x.pow(2).sum(1).flatten(1), dim=1))
    later = torch.rand(2, 5, 2, 3, generator=g, requires_grad=True)
    SADLoss(0.1, detach_target=True)([x.requires_grad_(), later])["loss"].backward()
    assert later.grad is None and x.grad.abs().sum() > 0


def test_sad_half_precision_is_float32():
    method = SAD.from_args(make_args(SAD, ["--sad-start-fraction", "0"]), RESNET18_INFO, None)
    student = fake_outputs(requires_grad=False, dtype=torch.float16)
    assert method(ctx_for(student))["sad"].dtype == torch.float32


# ---------------------------------------------------------------- Tf-KD

def test_tf_kd_reg_replaces_task_ce_and_ignores_minus_one():
    method = TfKD.from_args(make_args(TfKD), RESNET18_INFO, None)
    student = fake_outputs()
    labels = make_labels()
    ctx = ctx_for(student, labels=labels)
    terms = dict(method(ctx))
    assert set(terms) == {"tf_kd"}
    from losses.task import TaskLoss
    method.set_task_criterion(TaskLoss("ce", aux_weight=0.0))
    terms.update(method.task_loss(ctx))        # the method owns the task loss: (1 - alpha) * CE
    assert set(terms) == {"task", "tf_kd"}
    ce = SegCrossEntropyLoss(ignore_index=-1)(student.logits, labels)
    assert torch.allclose(terms["task"], (1 - 0.1) * ce)
    # same numbers when the ignore value is 255 (the card's convention)
    up = upsample_to(student.logits, labels.shape[-2:])
    ref = TfKDLoss("reg", 0.1, 20.0, 100.0, ignore_index=255)(up, torch.where(labels < 0, 255, labels))
    assert torch.allclose(terms["tf_kd"], 0.1 * ref["kl"]) and torch.allclose(sum(terms.values()), ref["loss"])
    # ignored pixels receive no gradient at label resolution
    up = up.detach().requires_grad_()
    TfKDLoss("reg", 0.1, 20.0, 100.0, ignore_index=-1)(up, labels)["loss"].backward()
    assert float(up.grad.permute(1, 0, 2, 3)[:, labels < 0].abs().sum()) == 0.0
    sum(terms.values()).backward()
    assert torch.isfinite(student.logits.grad).all() and student.logits.grad.abs().sum() > 0


def test_tf_kd_reg_matches_dense_virtual_teacher():
    g = torch.Generator().manual_seed(5)
    logits, labels = torch.randn(30, 6, generator=g).double(), torch.randint(0, 6, (30,), generator=g)
    target = torch.full((30, 6), 0.01 / 5, dtype=torch.float64)
    target[torch.arange(30), labels] = 0.99
    dense = F.kl_div(F.log_softmax(logits, 1), F.softmax(target / 20.0, 1), reduction="sum") / (30 * 6) * 100.0
    assert torch.allclose(TfKDLoss("reg", 0.1, 20.0, 100.0)(logits, labels)["kl"], dense)


def test_tf_kd_self_needs_teacher_and_differs_from_reg():
    student = fake_outputs()
    teacher = fake_outputs(seed=7, requires_grad=False)
    self_method = TfKDSelf.from_args(make_args(TfKDSelf), RESNET18_INFO, RESNET18_INFO)
    reg_method = TfKDReg.from_args(make_args(TfKDReg), RESNET18_INFO, None)
    with pytest.raises(ValueError, match="teacher"):
        self_method(ctx_for(student))
    self_terms = self_method(ctx_for(student, teacher=teacher))
    reg_terms = reg_method(ctx_for(student, teacher=teacher))
    assert not torch.allclose(self_terms["tf_kd"], reg_terms["tf_kd"])
    assert self_terms["tf_kd"].item() > 0
    # a teacher identical to the student gives a zero KL
    twin = SegOutputs([student.logits.detach().clone(), student.aux_logits.detach()], ["logits", "aux_logits"])
    assert self_method(ctx_for(student, teacher=twin))["tf_kd"].item() == pytest.approx(0.0, abs=1e-6)
    sum(self_terms.values()).backward()
    assert torch.isfinite(student.logits.grad).all()


def test_tf_kd_all_ignored_and_half_inputs():
    method = TfKD.from_args(make_args(TfKD), RESNET18_INFO, None)
    student = fake_outputs()
    terms = method(ctx_for(student, labels=torch.full((2, 32, 48), -1, dtype=torch.long)))
    assert all(v.item() == 0.0 for v in terms.values())
    sum(terms.values()).backward()
    half = fake_outputs(requires_grad=False, dtype=torch.float16)
    assert all(v.dtype == torch.float32 for v in method(ctx_for(half)).values())
    with pytest.raises(ValueError, match="upsample"):
        TfKDLoss()(torch.zeros(2, 5, 4, 6), torch.zeros(2, 8, 12, dtype=torch.long))


def test_combined_tf_fd_and_sad():
    parser = argparse.ArgumentParser()
    TfFD.add_args(parser)
    SAD.add_args(parser)
    args = parser.parse_args(["--sad-start-fraction", "0"])
    for k, v in dict(kd_method="tf_fd+sad", max_iterations=30, dataset="camvid", student_backbone="resnet18",
                     ignore_index=-1, num_classes=5).items():
        setattr(args, k, v)
    method = losses.build_method(args, RESNET18_INFO, None)
    assert method.num_teachers == 0 and method.student_stages
    terms = method(ctx_for(fake_outputs(), iteration=3, max_iterations=30))
    assert set(terms) == {"tf_fd_inter", "tf_fd_intra", "sad"}
