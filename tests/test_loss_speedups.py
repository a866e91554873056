"""The optimised loss forms equal the direct ones (tests/naive_losses.py): values and gradients in
float64 to rounding, and float32 gradients close to the float64 ones at realistic magnitudes."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from losses.af_dcd import AfDCD
from losses.af_dcd_projector import EnhancedProjector, folded_masked_conv, folding_pays, plain_projector
from losses.cirkd_relation import chunked_anchor_kl, chunked_relation_kl
from naive_losses import naive_anchor_kl, naive_masked_conv, naive_relation_kl, use_naive


def _grads(fn, *tensors):
    tensors = [t.detach().clone().requires_grad_(True) for t in tensors]
    value = fn(*tensors)
    value.backward()
    return value.detach(), [t.grad for t in tensors]


@pytest.mark.parametrize("with_bias", [True, False])
def test_folded_masked_conv_equals_align_then_conv_f64(with_bias):
    torch.manual_seed(0)
    align = nn.Conv2d(12, 40, 1, bias=with_bias).double()
    conv = nn.Conv2d(40, 40, 3, padding=1).double()
    student = torch.randn(2, 12, 7, 9, dtype=torch.float64, requires_grad=True)
    keep = (torch.rand(2, 1, 7, 9) > 0.75).double()
    weights = torch.randn(2, 40, 7, 9, dtype=torch.float64)
    outs = {}
    for name, fn in (("folded", folded_masked_conv), ("naive", naive_masked_conv)):
        for p in list(align.parameters()) + list(conv.parameters()) + [student]:
            p.grad = None
        out = fn(align, conv, student, keep)
        (out * weights).sum().backward()
        outs[name] = [out.detach(), student.grad.clone()] + [p.grad.clone() for p in
                                                              list(align.parameters()) + list(conv.parameters())]
    for a, b in zip(outs["folded"], outs["naive"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_folding_only_where_it_saves_work():
    assert folding_pays(512, 2048) and folding_pays(320, 2048)
    assert not folding_pays(2048, 512)


@pytest.mark.parametrize("enhanced", [False, True])
def test_afdcd_folded_method_equals_unfolded_and_f32_grads_match_f64(enhanced):
    torch.manual_seed(1)
    method = AfDCD(64, 256, num_groups=16, pool_size=2, patch_size=(2, 2), enhance_projector=enhanced)
    assert method.fold_align
    naive = AfDCD(64, 256, num_groups=16, pool_size=2, patch_size=(2, 2), enhance_projector=enhanced)
    naive.load_state_dict(method.state_dict())
    assert use_naive(naive) and not naive.fold_align
    # Realistic magnitudes: post-ReLU backbone features of O(1), teacher c4 a few units.
    student = torch.relu(torch.randn(2, 64, 8, 8)) * 2
    teacher = torch.relu(torch.randn(2, 256, 8, 8)) * 3
    keep = (torch.rand(2, 1, 8, 8) <= 0.25).float()

    def run(m, dtype):
        m = m.to(dtype)
        for p in m.parameters():
            p.grad = None
        s = student.to(dtype).requires_grad_(True)
        fd, ctr = m.feature_losses(s, teacher.to(dtype), keep_mask=keep.to(dtype))
        (2e-6 * fd + 0.005 * ctr).backward()
        return [t.detach().clone() for t in [fd, ctr, s.grad] + [p.grad for p in m.parameters()]]

    folded64, naive64 = run(method, torch.float64), run(naive, torch.float64)
    for a, b in zip(folded64, naive64):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # float32 loses no more to the fold than to the direct form (error relative to each tensor's scale).
    folded32, naive32 = run(method, torch.float32), run(naive, torch.float32)
    for f32, n32, ref in zip(folded32, naive32, folded64):
        scale = float(ref.abs().max()) + 1e-30
        folded_error = float((f32.double() - ref).abs().max()) / scale
        naive_error = float((n32.double() - ref).abs().max()) / scale
        assert folded_error < 1e-5 and folded_error <= 3 * naive_error + 2e-6, (folded_error, naive_error)


def _relation_inputs(batch, pixels, channels, dtype):
    torch.manual_seed(2)
    s = F.normalize(torch.randn(batch, pixels, channels, dtype=dtype), dim=-1)
    t = F.normalize(torch.randn(batch, pixels, channels, dtype=dtype), dim=-1)
    return s, t


@pytest.mark.parametrize("group_size", [0, 2])
def test_chunked_relation_equals_all_pairs_f64(group_size):
    s, t = _relation_inputs(3, 50, 16, torch.float64)
    value, (grad,) = _grads(lambda x: chunked_relation_kl(x, t, 0.1, group_size, rows=7), s)
    ref_value, (ref_grad,) = _grads(lambda x: naive_relation_kl(x, t, 0.1, group_size), s)
    torch.testing.assert_close(value, ref_value, rtol=1e-11, atol=1e-14)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-14)


def test_chunked_relation_f32_gradient_matches_f64():
    s64, t64 = _relation_inputs(2, 96, 32, torch.float64)
    value32, (grad32,) = _grads(lambda x: chunked_relation_kl(x, t64.float(), 0.1, 0, rows=40), s64.float())
    value64, (grad64,) = _grads(lambda x: chunked_relation_kl(x, t64, 0.1, 0, rows=40), s64)
    torch.testing.assert_close(value32.double(), value64, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad32.double(), grad64, rtol=1e-3, atol=1e-5 * float(grad64.abs().max()))


def test_chunked_anchor_kl_equals_direct_form():
    torch.manual_seed(3)
    a_s = F.normalize(torch.randn(45, 24, dtype=torch.float64), dim=-1)
    a_t = F.normalize(torch.randn(45, 24, dtype=torch.float64), dim=-1)
    keys = F.normalize(torch.randn(30, 24, dtype=torch.float64), dim=-1)
    for temperature in (1.0, 2.0):
        value, (grad,) = _grads(lambda x: chunked_anchor_kl(x, a_t, keys, 0.1, temperature, rows=8), a_s)
        ref_value, (ref_grad,) = _grads(lambda x: naive_anchor_kl(x, a_t, keys, 0.1, temperature), a_s)
        torch.testing.assert_close(value, ref_value, rtol=1e-11, atol=1e-14)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-14)
    value32, (grad32,) = _grads(lambda x: chunked_anchor_kl(x, a_t.float(), keys.float(), 0.1, 1.0, rows=8),
                                a_s.float())
    value64, (grad64,) = _grads(lambda x: chunked_anchor_kl(x, a_t, keys, 0.1, 1.0, rows=8), a_s)
    torch.testing.assert_close(grad32.double(), grad64, rtol=1e-3, atol=1e-5 * float(grad64.abs().max()))


def test_chunk_rows_must_be_positive():
    s, t = _relation_inputs(1, 4, 3, torch.float32)
    with pytest.raises(ValueError, match="rows per chunk"):
        chunked_relation_kl(s, t, 0.1, rows=0)


def test_projector_keys_are_the_official_ones():
    assert sorted(plain_projector(4).state_dict()) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight"]
    assert sorted(k.split(".")[0] for k in EnhancedProjector(4).state_dict())[::2] == [
        "adapt1", "adapt2", "block1", "block2"]
