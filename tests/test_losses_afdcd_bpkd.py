"""Af-DCD and BPKD beyond the golden cases: CLI defaults, variants, hooks, method-level steps."""
import argparse
import math
import os

import pytest
import torch

from golden import GOLDEN_DIR, load_case
from losses.af_dcd import AfDCD, EnhancedProjector, centre_keep_mask, keep_from_uniform, omni_contrastive_loss
from losses.base import StepContext
from losses.bpkd import BPKD, bpkd_loss, edge_mask
from models.outputs import SegOutputs

# The method card's per-dataset table (lambda_kd, lambda_fd, lambda_ctr); pascal_context uses VOC's.
CARD_WEIGHTS = {
    "citys": (1.0, 2e-6, 0.005),
    "voc": (1.0, 1e-6, 0.005),
    "camvid": (1.0, 8e-6, 0.01),
    "ade20k": (0.5, 1e-6, 0.04),
    "coco_stuff_164k": (0.5, 5e-6, 0.005),
    "pascal_context": (1.0, 1e-6, 0.005),
}
STUDENT_INFO = {"logits": 5, "aux_logits": 5, "c4": 8, "head_feat": 6}
TEACHER_INFO = {"logits": 5, "aux_logits": 5, "c4": 16, "head_feat": 6}


def parse(cmd, dataset="citys"):
    parser = argparse.ArgumentParser()
    AfDCD.add_args(parser)
    BPKD.add_args(parser)
    args = parser.parse_args(cmd)
    args.dataset, args.num_classes, args.ignore_index = dataset, 5, -1
    return args


def outputs(logits, c4):
    return SegOutputs([logits, logits * 0.5, c4, logits], ("logits", "aux_logits", "c4", "head_feat"))


def features(batch=2, cs=8, ct=16, height=16, width=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, cs, height, width, generator=g, dtype=torch.float64),
            torch.randn(batch, ct, height, width, generator=g, dtype=torch.float64))


# ---- Af-DCD: CLI --------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", sorted(CARD_WEIGHTS))
def test_afdcd_dataset_defaults(dataset):
    m = AfDCD.from_args(parse([], dataset), STUDENT_INFO, TEACHER_INFO)
    assert (m.lambda_kd, m.lambda_fd, m.lambda_ctr) == CARD_WEIGHTS[dataset]
    assert (m.tau, m.num_groups, m.pool_size, m.patch_size) == (0.07, 16, 4, (4, 4))
    assert (m.rand_mask, m.mask_ratio, m.enhance_projector) == (True, 0.75, False)
    assert (m.variant, m.kd_temperature) == ("omni", 1.0)
    assert m.contrast_crop == (44 if dataset == "camvid" else None)
    assert isinstance(m.align, torch.nn.Conv2d) and (m.align.in_channels, m.align.out_channels) == (8, 16)
    assert sorted(k for k, _ in m.named_parameters()) == ["align.bias", "align.weight", "proj.conv1.bias",
                                                        "proj.conv1.weight", "proj.conv2.bias", "proj.conv2.weight"]


def test_afdcd_flags_override():
    args = parse(["--lambda-kd", "0", "--lambda-fd", "1e-3", "--lambda-ctr", "0.2", "--contrast-tau", "0.5",
                  "--num-groups", "4", "--pool-size", "2", "--patch-size", "2", "4", "--mask-ratio", "0.5",
                  "--no-rand-mask", "--enhance-projector", "--contrast-crop", "0", "--kd-temperature", "2"], "camvid")
    m = AfDCD.from_args(args, STUDENT_INFO, TEACHER_INFO)
    assert (m.lambda_kd, m.lambda_fd, m.lambda_ctr, m.tau) == (0.0, 1e-3, 0.2, 0.5)
    assert (m.num_groups, m.pool_size, m.patch_size, m.mask_ratio, m.kd_temperature) == (4, 2, (2, 4), 0.5, 2.0)
    assert m.rand_mask is False and m.contrast_crop is None and isinstance(m.proj, EnhancedProjector)
    assert AfDCD.from_args(parse(["--rand-mask", "--no-enhance-projector"]), STUDENT_INFO, TEACHER_INFO).rand_mask
    ch = AfDCD.from_args(parse(["--afdcd-variant", "channel"]), STUDENT_INFO, TEACHER_INFO)
    sp = AfDCD.from_args(parse(["--afdcd-variant", "spatial"]), STUDENT_INFO, TEACHER_INFO)
    assert (ch.patch_size, ch.num_groups) == ((1, 1), 16) and (sp.patch_size, sp.num_groups) == ((4, 4), 1)


def test_afdcd_bad_settings_give_clear_errors():
    with pytest.raises(ValueError, match="--patch-size 1 1"):
        AfDCD.from_args(parse(["--afdcd-variant", "channel", "--patch-size", "2", "2"]), STUDENT_INFO, TEACHER_INFO)
    with pytest.raises(ValueError, match="--num-groups"):
        AfDCD.from_args(parse(["--afdcd-variant", "spatial", "--num-groups", "4"]), STUDENT_INFO, TEACHER_INFO)
    with pytest.raises(ValueError, match="divisible by --num-groups"):
        AfDCD.from_args(parse(["--num-groups", "5"]), STUDENT_INFO, TEACHER_INFO)
    with pytest.raises(ValueError, match="c4"):
        AfDCD.from_args(parse([]), {"logits": 5}, {"logits": 5})
    m = AfDCD(8, 16).double()
    feat_s, feat_t = features(height=12, width=16)   # pooled 3x4: 4x4 patches do not tile it
    with pytest.raises(ValueError, match="not divisible by --patch-size"):
        m.feature_losses(feat_s, feat_t)


# ---- Af-DCD: masks ------------------------------------------------------------------------------
def test_afdcd_golden_masks_reproduced():
    rand = load_case(os.path.join(GOLDEN_DIR, "af_dcd", "citys_randmask_kd.pt"))
    keep = keep_from_uniform(rand["inputs"]["rand_uniform"], rand["config"]["mask_ratio"])
    assert torch.equal(keep.double(), rand["inputs"]["keep_mask"])
    centre = load_case(os.path.join(GOLDEN_DIR, "af_dcd", "citys_centermask_enhanced.pt"))
    assert torch.equal(centre_keep_mask(2, 16, 16, dtype=torch.float64), centre["inputs"]["keep_mask"])
    m = AfDCD(4, 16, rand_mask=False).double()
    got = m.make_keep_mask(2, 16, 16, torch.device("cpu"))
    assert torch.equal(got.double(), centre["inputs"]["keep_mask"])


def test_afdcd_keep_mask_injection_is_deterministic():
    m = AfDCD(8, 16).double()
    feat_s, feat_t = features()
    a = m.make_keep_mask(2, 16, 16, torch.device("cpu"), torch.Generator().manual_seed(3))
    b = m.make_keep_mask(2, 16, 16, torch.device("cpu"), torch.Generator().manual_seed(3))
    c = m.make_keep_mask(2, 16, 16, torch.device("cpu"), torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.1 < float(a.mean()) < 0.4   # about 25 % of the positions survive
    first = m.feature_losses(feat_s, feat_t, keep_mask=a)
    second = m.feature_losses(feat_s, feat_t, keep_mask=b)
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    assert not torch.equal(first[0], m.feature_losses(feat_s, feat_t, keep_mask=c)[0])
    # Through the method: ctx.extra["afdcd_keep_mask"] and ctx.generator.
    logits = torch.randn(2, 5, 16, 16, dtype=torch.float64)
    def ctx(generator=None, **extra):
        return StepContext(student=outputs(logits, feat_s), teacher=outputs(logits, feat_t),
                           labels=torch.zeros(2, 64, 64, dtype=torch.long), iteration=1, max_iterations=10,
                           extra=extra, generator=generator)
    by_mask = m(ctx(afdcd_keep_mask=a))
    by_gen = m(ctx(generator=torch.Generator().manual_seed(3)))
    assert torch.equal(by_mask["fd"], m.lambda_fd * first[0]) and torch.equal(by_gen["ctr"], by_mask["ctr"])
    with pytest.raises(ValueError, match="keep_mask"):
        m.feature_losses(feat_s, feat_t, keep_mask=a[:, :, :8])


# ---- Af-DCD: variants and alignment -------------------------------------------------------------
def spatial_reference(pred, target, patch, tau):
    """Loop version of the spatial variant: anchors = positions, negatives = other positions of the patch."""
    batch, _, height, width = pred.shape
    total = pred.new_zeros(())
    for b in range(batch):
        for u in range(0, height, patch[0]):
            for v in range(0, width, patch[1]):
                p = pred[b, :, u:u + patch[0], v:v + patch[1]].reshape(pred.shape[1], -1).t()
                q = target[b, :, u:u + patch[0], v:v + patch[1]].reshape(pred.shape[1], -1).t()
                for n in range(p.shape[0]):
                    scores = torch.stack([-(p[n] - q[j]).abs().sum() / tau for j in range(q.shape[0])])
                    total = total + torch.logsumexp(scores, 0) - scores[n]
    return total / (batch * height * width)


def test_afdcd_variants():
    feat_s, feat_t = features(height=16, width=16)
    keep = centre_keep_mask(2, 16, 16, dtype=torch.float64)
    omni = AfDCD(8, 16, num_groups=4).double()
    state = omni.state_dict()
    omni_11 = AfDCD(8, 16, num_groups=4, patch_size=(1, 1)).double()
    channel = AfDCD(8, 16, num_groups=4, patch_size=(1, 1), variant="channel").double()
    spatial = AfDCD(8, 16, num_groups=1, variant="spatial").double()
    for m in (omni_11, channel, spatial):
        m.load_state_dict(state)
    results = {name: m.feature_losses(feat_s, feat_t, keep_mask=keep)
               for name, m in [("omni", omni), ("omni_11", omni_11), ("channel", channel), ("spatial", spatial)]}
    assert all(bool(torch.isfinite(v).all()) for r in results.values() for v in r)
    assert torch.equal(results["channel"][1], results["omni_11"][1])
    assert not torch.allclose(results["channel"][1], results["omni"][1])
    assert all(torch.equal(r[0], results["omni"][0]) for r in results.values())   # the fd term is shared
    # Spatial: equal to a loop over positions; with the omni rule and M = 1 there are no negatives (0).
    with torch.no_grad():
        pred = omni.proj(omni.align(feat_s) * keep)
        pooled_p, pooled_t = torch.nn.functional.max_pool2d(pred, 4), torch.nn.functional.max_pool2d(feat_t, 4)
        ref = spatial_reference(pooled_p, pooled_t, (4, 4), 0.07)
        assert torch.allclose(results["spatial"][1], ref, rtol=1e-10, atol=1e-12) and float(ref) > 0
        assert float(omni_contrastive_loss(pooled_p, pooled_t, (4, 4), 1, 0.07, "omni")) == 0.0
        # Student == teacher with well-separated positions: the positive wins every row (loss near 0).
        assert float(omni_contrastive_loss(pooled_t * 50, pooled_t * 50, (4, 4), 1, 0.07, "spatial")) < 1e-6
    results["spatial"][1].backward()
    assert all(p.grad is not None for p in spatial.parameters())


def test_afdcd_identity_alignment():
    m = AfDCD(16, 16, num_groups=4, pool_size=2, patch_size=(2, 2)).double()
    assert isinstance(m.align, torch.nn.Identity)
    assert not any(k.startswith("align") for k in m.state_dict())
    feat_s, feat_t = features(cs=16, ct=16, height=8, width=16)
    feat_s.requires_grad_(True)
    keep = torch.ones(2, 1, 8, 16, dtype=torch.float64)
    fd, _ = m.feature_losses(feat_s, feat_t, keep_mask=keep)
    assert torch.allclose(fd, (m.proj(feat_s) - feat_t).pow(2).sum() / 2)
    fd.backward()
    assert feat_s.grad is not None and float(feat_s.grad.abs().sum()) > 0


def test_afdcd_grad_clip_touches_only_method_params():
    m = AfDCD(8, 16, enhance_projector=True)
    student = torch.nn.Conv2d(3, 8, 1)
    images = torch.randn(2, 3, 16, 16)
    feat_t = torch.randn(2, 16, 16, 16)
    fd, ctr = m.feature_losses(student(images), feat_t, keep_mask=torch.ones(2, 1, 16, 16))
    (1e4 * (fd + ctr)).backward()
    params = list(m.parameters())
    before = torch.norm(torch.stack([p.grad.norm() for p in params]))
    student_before = [p.grad.clone() for p in student.parameters()]
    assert float(before) > 15
    m.before_optimizer_step()
    after = torch.norm(torch.stack([p.grad.norm() for p in params]))
    assert abs(float(after) - 15.0) < 1e-3
    assert all(torch.equal(a, p.grad) for a, p in zip(student_before, student.parameters()))


def test_afdcd_method_step_float32_and_autocast():
    m = AfDCD.from_args(parse([]), STUDENT_INFO, TEACHER_INFO)
    student_c4 = torch.randn(2, 8, 16, 16, requires_grad=True)
    logits = torch.randn(2, 5, 16, 16, requires_grad=True)
    ctx = StepContext(student=outputs(logits, student_c4), teacher=outputs(torch.randn(2, 5, 16, 16),
                      torch.randn(2, 16, 16, 16)), labels=torch.zeros(2, 128, 128, dtype=torch.long),
                      iteration=1, max_iterations=10, generator=torch.Generator().manual_seed(0))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        terms = m(ctx)
    assert sorted(terms) == ["ctr", "fd", "kd"] and all(v.dtype == torch.float32 for v in terms.values())
    sum(terms.values()).backward()
    assert student_c4.grad is not None and logits.grad is not None
    assert all(p.grad is not None for p in m.student_optimizer_parameters())
    with pytest.raises(ValueError, match="teacher"):
        m(StepContext(student=ctx.student, labels=ctx.labels, iteration=1, max_iterations=10))


# ---- BPKD ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["default_stride8", "tau4_k5_pixelnorm_stride4"])
def test_bpkd_golden_edge_mask(name):
    case = load_case(os.path.join(GOLDEN_DIR, "bpkd", name + ".pt"))
    cfg = case["config"]
    got = edge_mask(case["inputs"]["labels"], cfg["num_classes"], cfg["logit_size"], cfg["kernel_size"],
                    cfg["ignore_index"], torch.float64)
    assert torch.allclose(got, case["intermediates"]["edge_mask"], rtol=0, atol=1e-12)


def test_bpkd_defaults_and_flags():
    m = BPKD.from_args(parse([]), STUDENT_INFO, TEACHER_INFO)
    assert (m.lambda_edge, m.lambda_body, m.alpha, m.kernel_size) == (50.0, 20.0, 2.0, 7)
    assert (m.tau_edge, m.tau_body, m.edge_reduction) == (1.0, 1.0, "class")
    m = BPKD.from_args(parse(["--bpkd-lambda-body", "0", "--bpkd-alpha", "1", "2", "3", "4", "5",
                              "--bpkd-kernel-size", "5", "--bpkd-tau-edge", "4", "--bpkd-edge-reduction", "pixel"]),
                       STUDENT_INFO, TEACHER_INFO)
    assert (m.lambda_body, m.alpha, m.kernel_size) == (0.0, [1, 2, 3, 4, 5], 5)
    assert (m.tau_edge, m.edge_reduction) == (4.0, "pixel")
    with pytest.raises(ValueError, match="odd"):
        BPKD.from_args(parse(["--bpkd-kernel-size", "6"]), STUDENT_INFO, TEACHER_INFO)
    with pytest.raises(ValueError, match="per class"):
        BPKD.from_args(parse(["--bpkd-alpha", "1", "2"]), STUDENT_INFO, TEACHER_INFO)


def test_bpkd_method_forward_backward():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 5, (2, 8, 8), generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
    labels[:, :10, :10] = -1
    student = torch.randn(2, 5, 8, 8, generator=g, requires_grad=True)
    teacher = torch.randn(2, 5, 8, 8, generator=g)
    ctx = StepContext(student=outputs(student, student), teacher=outputs(teacher, teacher), labels=labels,
                      iteration=1, max_iterations=10, ignore_index=-1)
    m = BPKD.from_args(parse([]), STUDENT_INFO, TEACHER_INFO)
    terms = m(ctx)
    assert sorted(terms) == ["body", "edge"] and all(float(v.detach()) > 0 for v in terms.values())
    # -1 (framework) and 255 (mmseg) ignore values give the same loss.
    mmseg = bpkd_loss(student, teacher, torch.where(labels < 0, torch.full_like(labels, 255), labels))
    assert torch.allclose(terms["edge"], mmseg["weighted_edge"])
    assert torch.allclose(terms["body"], mmseg["weighted_body"])
    (terms["edge"] + terms["body"]).backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0
    only_edge = BPKD.from_args(parse(["--bpkd-lambda-body", "0"]), STUDENT_INFO, TEACHER_INFO)(ctx)
    assert sorted(only_edge) == ["edge"]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert all(v.dtype == torch.float32 for v in m(ctx).values())


def test_bpkd_options():
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 4, (2, 6, 5), generator=g).repeat_interleave(5, 1).repeat_interleave(5, 2)
    student = torch.randn(2, 4, 7, 6, generator=g, dtype=torch.float64)   # 30x25 -> 7x6: adaptive pooling
    teacher = torch.randn(2, 4, 7, 6, generator=g, dtype=torch.float64)
    base = bpkd_loss(student, teacher, labels)
    assert base["edge_mask"].shape == (2, 4, 7, 6) and float(base["edge_mask"].max()) <= 1.0
    vector = bpkd_loss(student, teacher, labels, alpha=[2.0] * 4)
    assert torch.allclose(base["total"], vector["total"])
    weighted = bpkd_loss(student, teacher, labels, alpha=[2.0, 0.0, 0.0, 0.0])
    assert float(weighted["loss_edge"]) < float(base["loss_edge"])
    split = bpkd_loss(student, teacher, labels, tau_edge=2.0, tau_body=4.0, lambda_edge=1.0, lambda_body=3.0)
    assert torch.allclose(split["total"], split["loss_edge"] + 3.0 * split["loss_body"])
    assert torch.allclose(split["loss_body"], bpkd_loss(student, teacher, labels, tau_body=4.0)["loss_body"])
    # Teacher logits at another size are resized to the student's.
    big = bpkd_loss(student, torch.nn.functional.interpolate(teacher, size=(14, 12)), labels)
    assert math.isfinite(float(big["total"]))
    # A single-class crop has no edges: the edge term is 0 and the body term is plain CWD.
    flat = bpkd_loss(student, teacher, torch.zeros_like(labels))
    assert float(flat["loss_edge"]) == 0.0 and float(flat["edge_mask"].abs().sum()) == 0.0
