"""Method-level tests of the CIRKD baselines: kd, skd, ifvd, cwd, at, fitnet (losses/*.py)."""
import argparse

import pytest
import torch
import torch.nn.functional as F

import losses
from losses.base import StepContext
from losses.registry import get_method_class
from losses.cwd import cwd_loss
from losses.ifvd import ifv_loss
from losses.kd import kd_loss
from models.outputs import SegOutputs

METHODS = ["kd", "skd", "ifvd", "cwd", "at", "fitnet"]
DATASETS = ["citys", "voc", "ade20k", "camvid", "coco_stuff_164k", "pascal_context"]
NUM_CLASSES = 5
S_INFO = {"logits": NUM_CLASSES, "aux_logits": NUM_CLASSES, "head_feat": 6}
T_INFO = {"logits": NUM_CLASSES, "aux_logits": NUM_CLASSES, "head_feat": 10}
# Expected weights when no flag is given: (method, dest) -> value, from the method cards.
CARD_DEFAULTS = {
    "kd": {"lambda_kd": 1.0},
    "skd": {"lambda_kd": 1.0, "lambda_skd": 10.0, "lambda_adv": 0.001, "lambda_d": 0.1},
    "ifvd": {"lambda_kd": 1.0, "lambda_ifv": 20.0, "lambda_adv": 0.001, "lambda_d": 0.1},
    "cwd": {"lambda_kd": 1.0, "lambda_fea": 50.0, "lambda_logit": 3.0, "lambda_adv": 0.001, "lambda_d": 0.1},
    "at": {"lambda_kd": 1.0, "lambda_at": 10000.0},
    "fitnet": {"lambda_kd": 1.0, "lambda_fitnet": 10.0},
}


def make_args(method, argv=(), dataset="citys", student_model="deeplabv3"):
    parser = argparse.ArgumentParser()
    for name in METHODS:
        get_method_class(name).add_args(parser)
    args = parser.parse_args(list(argv))
    args.kd_method = method
    args.dataset = dataset
    args.num_classes = NUM_CLASSES
    args.ignore_index = -1
    args.student_model = student_model
    args.crop_size = [64, 64]
    args.max_iterations = 10
    return args


def build(method, argv=(), **kw):
    return losses.build_method(make_args(method, argv, **kw), S_INFO, T_INFO)


def outputs(size, generator, channels, requires_grad, dtype=torch.float32):
    h, w = size
    logits = torch.randn(2, NUM_CLASSES, h, w, generator=generator).to(dtype)
    feat = torch.randn(2, channels, h, w, generator=generator).to(dtype)
    if requires_grad:
        logits.requires_grad_()
        feat.requires_grad_()
    return SegOutputs([logits, feat], ["logits", "head_feat"])


def context(size=(8, 10), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    student = outputs(size, g, S_INFO["head_feat"], True, dtype)
    teacher = outputs(size, g, T_INFO["head_feat"], False, dtype)
    labels = torch.randint(-1, NUM_CLASSES, (2, size[0] * 8, size[1] * 8), generator=g)
    return StepContext(student=student, teacher=teacher, labels=labels, iteration=1, max_iterations=10,
                       ignore_index=-1)


def weights_of(method):
    got = {"lambda_kd": method.lambda_kd}
    for dest in ("lambda_skd", "lambda_ifv", "lambda_fea", "lambda_logit", "lambda_at", "lambda_fitnet"):
        if hasattr(method, dest):
            got[dest] = getattr(method, dest)
    holistic = getattr(method, "holistic", None)
    if hasattr(method, "holistic"):
        got["lambda_adv"] = holistic.lambda_adv if holistic else 0.0
        got["lambda_d"] = holistic.lambda_d if holistic else 0.0
    return got


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("name", METHODS)
def test_card_defaults_per_dataset(name, dataset):
    method = build(name, dataset=dataset)
    assert weights_of(method) == CARD_DEFAULTS[name]
    assert method.kd.temperature == 1.0


def test_cwd_segformer_defaults_and_temperature():
    seg = build("cwd", student_model="segformer")
    assert (seg.lambda_fea, seg.lambda_logit) == (5.0, 0.3)
    plain = build("cwd")
    assert plain.cwd_feat.temperature == 4.0 and plain.cwd_feat.divergence == "kl"
    assert build("cwd", ["--cwd-divergence", "mse"]).cwd_logit.temperature == 1.0


def test_flags_override_defaults():
    method = build("skd", ["--lambda-kd", "0.5", "--kd-temperature", "2", "--lambda-skd", "3",
                           "--lambda-adv", "0.01", "--lambda-d", "0.2"])
    assert weights_of(method) == {"lambda_kd": 0.5, "lambda_skd": 3.0, "lambda_adv": 0.01, "lambda_d": 0.2}
    assert method.kd.temperature == 2.0
    cwd = build("cwd", ["--lambda-cwd-fea", "7", "--lambda-cwd-logit", "0.7", "--cwd-temperature", "2",
                        "--cwd-norm", "spatial"], student_model="segformer")
    assert (cwd.lambda_fea, cwd.lambda_logit, cwd.cwd_feat.temperature, cwd.cwd_feat.norm_type) == (7.0, 0.7, 2.0, "spatial")


@pytest.mark.parametrize("name,argv", [
    ("kd", ["--lambda-kd", "0"]),
    ("skd", ["--lambda-skd", "0", "--lambda-adv", "0", "--lambda-d", "0"]),
    ("ifvd", ["--lambda-ifv", "0", "--lambda-adv", "0", "--lambda-d", "0"]),
    ("cwd", ["--lambda-cwd-fea", "0", "--lambda-cwd-logit", "0", "--lambda-adv", "0", "--lambda-d", "0"]),
    ("at", ["--lambda-at", "0"]),
    ("fitnet", ["--lambda-fitnet", "0"]),
])
def test_zero_weight_terms_are_not_built(name, argv):
    method = build(name, argv + ["--lambda-kd", "0"])
    assert list(method.parameters()) == [] and len(method.state_dict()) == 0
    assert method(context()) == {}
    assert method.after_optimizer_step(context()) == {}


@pytest.mark.parametrize("name,argv,expected", [
    ("kd", [], {"kd"}),
    ("skd", ["--lambda-adv", "0", "--lambda-d", "0"], {"kd", "skd_pairwise"}),
    ("ifvd", ["--lambda-adv", "0", "--lambda-d", "0"], {"kd", "ifv"}),
    ("cwd", ["--lambda-adv", "0", "--lambda-d", "0"], {"kd", "cwd_fea", "cwd_logit"}),
    ("at", [], {"kd", "at"}),
    ("fitnet", [], {"kd", "fitnet"}),
])
def test_forward_terms_and_backward_reach_student(name, argv, expected):
    method = build(name, argv)
    ctx = context()
    terms = method(ctx)
    assert set(terms) == expected
    for k, v in terms.items():
        assert v.dim() == 0 and torch.isfinite(v) and float(v.detach()) > 0, k
    sum(terms.values()).backward()
    assert ctx.student.logits.grad is not None and ctx.student.logits.grad.abs().sum() > 0
    if expected - {"kd", "cwd_logit"}:
        assert ctx.student.head_feat.grad is not None and ctx.student.head_feat.grad.abs().sum() > 0
    assert ctx.teacher.logits.grad is None and ctx.teacher.head_feat.grad is None
    for p in method.student_optimizer_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_adapters_only_where_needed():
    cwd = build("cwd", ["--lambda-adv", "0", "--lambda-d", "0"])
    assert cwd.cwd_feat.conv.weight.shape == (10, 6, 1, 1) and cwd.cwd_logit.conv is None
    fit = build("fitnet")
    assert fit.fitnet.conv.weight.shape == (10, 6, 1, 1)
    same = losses.build_method(make_args("cwd", ["--lambda-adv", "0"]), S_INFO, dict(T_INFO, head_feat=6))
    assert same.cwd_feat.conv is None


@pytest.mark.parametrize("name", ["kd", "skd", "ifvd", "cwd", "at", "fitnet"])
def test_low_precision_outputs_give_float32_terms(name):
    method = build(name, ["--lambda-adv", "0", "--lambda-d", "0"])
    ctx = context(dtype=torch.bfloat16)
    terms = method(ctx)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    assert ctx.student.logits.grad.dtype == torch.bfloat16


def test_missing_teacher_is_a_clear_error():
    ctx = context()
    ctx.teacher = None
    with pytest.raises(ValueError, match="needs a teacher"):
        build("at")(ctx)


# ---- pure functions --------------------------------------------------------------------------

def test_kd_loss_matches_formula_and_rejects_mismatch():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(2, 4, 3, 5, generator=g), torch.randn(2, 4, 3, 5, generator=g)
    temp = 3.0
    p_t = F.softmax(t / temp, 1)
    manual = (p_t * (p_t.log() - F.log_softmax(s / temp, 1))).sum(1).mean() * temp ** 2
    assert torch.allclose(kd_loss(s, t, temp), manual, rtol=1e-5)
    assert float(kd_loss(s, s, temp)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same batch and number of classes"):
        kd_loss(s, t[:, :3])


def test_cwd_mse_branch_works():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(2, 3, 4, 5, generator=g, requires_grad=True)
    t = torch.randn(2, 3, 4, 5, generator=g)
    loss = cwd_loss(s, t, temperature=1.0, divergence="mse")
    manual = (F.softmax(s.flatten(2), -1) - F.softmax(t.flatten(2), -1)).pow(2).sum() / (2 * 3)
    assert torch.allclose(loss, manual)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert float(cwd_loss(t, t, divergence="mse")) == 0.0


def ifv_reference(fs, ft, labels, k):
    """The card's per-class loop, written out directly."""
    small = F.interpolate(labels[:, None].float(), size=fs.shape[2:], mode="nearest")[:, 0].long()

    def variation(f):
        centers = f.clone()
        for b in range(f.shape[0]):
            for c in range(k):
                mask = small[b] == c
                if mask.any():
                    centers[b][:, mask] = f[b][:, mask].sum(1, keepdim=True) / (mask.sum() + 1e-6)
        return F.cosine_similarity(f, centers, dim=1)
    return ((variation(fs) - variation(ft)) ** 2).mean()


def test_ifvd_matches_loop_and_handles_ignore_values():
    g = torch.Generator().manual_seed(3)
    fs, ft = torch.randn(2, 4, 5, 6, generator=g).double(), torch.randn(2, 7, 5, 6, generator=g).double()
    labels = torch.randint(-1, 3, (2, 37, 45), generator=g)        # class 3 of 4 absent
    assert torch.allclose(ifv_loss(fs, ft, labels, 4), ifv_reference(fs, ft, labels, 4))
    as_255 = torch.where(labels < 0, torch.full_like(labels, 255), labels)
    assert torch.allclose(ifv_loss(fs, ft, as_255, 4, ignore_index=255), ifv_loss(fs, ft, labels, 4))
    assert float(ifv_loss(fs, ft, torch.full_like(labels, -1), 4)) == pytest.approx(0.0, abs=1e-12)


# ---- SKD discriminator ----------------------------------------------------------------------

def d_weights(method):
    return {k: v.detach().clone() for k, v in method.holistic.discriminator.state_dict().items()}


@pytest.mark.parametrize("lambda_d", ["0.1", "0"])
def test_skd_discriminator_steps_only_with_lambda_d(lambda_d):
    torch.manual_seed(0)
    method = build("skd", ["--lambda-d", lambda_d])
    ctx = context(size=(64, 64))
    ctx.labels = ctx.labels[:, :8, :8]
    terms = method(ctx)
    assert set(terms) == {"kd", "skd_pairwise", "adv_G"}
    sum(terms.values()).backward()
    assert ctx.student.logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in method.holistic.discriminator.parameters())
    d_params = {id(p) for p in method.holistic.parameters()}
    assert not d_params & {id(p) for p in method.student_optimizer_parameters()}
    before = d_weights(method)
    logged = method.after_optimizer_step(ctx)
    after = d_weights(method)
    changed = any(not torch.equal(before[k], after[k]) for k in before if not k.endswith(("_u", "_v")))
    if lambda_d == "0":
        assert logged == {} and not changed
    else:
        assert set(logged) == {"adv_D"} and torch.isfinite(logged["adv_D"]) and changed


def test_skd_discriminator_optimizer_state_round_trips():
    torch.manual_seed(0)
    ctx = context(size=(64, 64))
    first = build("skd")
    first.after_optimizer_step(ctx)
    state = first.state_dict()
    assert any(k.endswith("_extra_state") for k in state)
    second = build("skd")
    second.load_state_dict(state)
    opt1, opt2 = first.holistic.optimizer.state_dict(), second.holistic.optimizer.state_dict()
    assert opt1["param_groups"] == opt2["param_groups"] and len(opt2["state"]) == len(opt1["state"]) > 0
    for i, s in opt1["state"].items():
        for key, value in s.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt2["state"][i][key]))
    first.after_optimizer_step(ctx)
    second.after_optimizer_step(ctx)
    for k, v in first.holistic.state_dict().items():
        if torch.is_tensor(v):
            assert torch.allclose(v, second.holistic.state_dict()[k]), k


def test_skd_small_logits_name_the_workaround():
    method = build("skd")
    with pytest.raises(ValueError, match="--lambda-adv 0"):
        method(context(size=(8, 10)))
    assert "adv_G" not in build("skd", ["--lambda-adv", "0", "--lambda-d", "0"])(context(size=(8, 10)))
