"""bpr_loss against a naive float64 formula, and its behaviour at extreme score gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st
from strategies import FLOAT_DTYPES, float_arrays

from lightgcn_sparse.loss import bpr_loss


def naive_bpr(u, p, n, layer0, reg) -> float:
    """mean_b -log sigmoid(pos_b - neg_b) + reg / 2 * sum ||E||^2 / B, in Python floats."""
    batch = len(u)
    total = 0.0
    for b in range(batch):
        pos = sum(float(a) * float(c) for a, c in zip(u[b], p[b]))
        neg = sum(float(a) * float(c) for a, c in zip(u[b], n[b]))
        total += -math.log(1.0 / (1.0 + math.exp(-(pos - neg))))
    sq = sum(float(v) ** 2 for e in layer0 for row in e for v in row)
    return total / batch + reg / 2 * sq / batch


@st.composite
def batches(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    b = draw(st.integers(1, 8), label="B")
    d = draw(st.integers(1, 6), label="d")
    embs = [draw(float_arrays((b, d), dtype, bound=3.0)) for _ in range(6)]
    reg = draw(st.sampled_from([0.0, 1e-4, 0.5]) | st.floats(0, 2), label="reg")
    note(f"dtype={dtype} B={b} d={d} reg={reg}")
    return dtype, embs, reg


@given(case=batches())
def test_equals_naive_float64(device, case):
    dtype, embs, reg = case
    u, p, n, u0, p0, n0 = (torch.from_numpy(e).to(device) for e in embs)
    loss = bpr_loss(u, p, n, (u0, p0, n0), reg=reg)
    assert loss.shape == () and loss.dtype == dtype and loss.device.type == device
    expected = naive_bpr(*embs[:3], embs[3:], reg)
    eps = torch.finfo(dtype).eps
    d = embs[0].shape[1]
    # scores are sums of d products of values <= 3 in magnitude; softplus has slope <= 1
    tol = 16 * eps * (d * 9 + 1) * (1 + reg * 3 * d * 9)
    assert float(loss) == pytest.approx(expected, rel=tol, abs=tol)


@given(case=batches())
def test_gradient_equals_float64_autograd(device, case):
    dtype, embs, reg = case
    tensors = [torch.from_numpy(e).to(device).requires_grad_(True) for e in embs]
    bpr_loss(*tensors[:3], tuple(tensors[3:]), reg=reg).backward()
    ref = [torch.from_numpy(e).double().requires_grad_(True) for e in embs]
    u, p, n = ref[:3]
    diff = (u * p).sum(1) - (u * n).sum(1)
    naive = -torch.log(torch.sigmoid(diff)).mean()
    naive = naive + reg / 2 * sum((e**2).sum() for e in ref[3:]) / len(u)
    naive.backward()
    tol = 64 * torch.finfo(dtype).eps * (1 + reg) * embs[0].shape[1]
    for t, r in zip(tensors, ref):
        # layer-0 rows get no gradient at all when reg == 0
        got = torch.zeros_like(r) if t.grad is None else t.grad.cpu().double()
        want = torch.zeros_like(r) if r.grad is None else r.grad
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_gradcheck_float64(device):
    gen = torch.Generator().manual_seed(0)
    args = [torch.randn(4, 3, generator=gen, dtype=torch.float64).to(device) for _ in range(6)]
    args = [a.requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(lambda *a: bpr_loss(*a[:3], a[3:], reg=0.3), tuple(args))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("gap", [1e4, -1e4, 1e30, -1e30])
def test_stable_for_huge_score_gaps(device, dtype, gap):
    """pos - neg = gap: the loss is ~max(0, -gap) with finite gradients, never inf or nan."""
    u = torch.ones(2, 1, dtype=dtype, device=device, requires_grad=True)
    p = torch.full((2, 1), gap / 2, dtype=dtype, device=device, requires_grad=True)
    n = torch.full((2, 1), -gap / 2, dtype=dtype, device=device, requires_grad=True)
    loss = bpr_loss(u, p, n)
    assert torch.isfinite(loss)
    assert float(loss.detach()) == pytest.approx(max(0.0, -gap), rel=1e-6, abs=1e-30)
    loss.backward()
    for t in (u, p, n):
        assert torch.isfinite(t.grad).all()


def test_huge_gap_at_1e4_matches_softplus(device):
    u = torch.tensor([[1.0], [1.0]], device=device)
    p = torch.tensor([[5000.0], [-5000.0]], device=device)
    n = torch.tensor([[-5000.0], [5000.0]], device=device)
    # one triple has loss ~0, the other ~1e4
    assert float(bpr_loss(u, p, n)) == pytest.approx(1e4 / 2)


def test_regularizer_only_when_reg_and_layer0():
    gen = torch.Generator().manual_seed(1)
    u, p, n, u0 = (torch.randn(3, 2, generator=gen) for _ in range(4))
    base = bpr_loss(u, p, n)
    assert torch.equal(bpr_loss(u, p, n, (u0,), reg=0.0), base)
    assert torch.equal(bpr_loss(u, p, n, (), reg=1.0), base)
    with_reg = bpr_loss(u, p, n, (u0,), reg=2.0)
    assert float(with_reg - base) == pytest.approx(float((u0**2).sum()) / 3, rel=1e-5)


def test_known_value():
    u = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[2.0, 5.0]])
    n = torch.tensor([[1.0, -5.0]])
    # pos - neg = 1: -log sigmoid(1) = log(1 + e^-1)
    assert float(bpr_loss(u, p, n)) == pytest.approx(math.log1p(math.exp(-1.0)))


# --- bad input --------------------------------------------------------------------------


def test_empty_batch_raises():
    e = torch.empty(0, 4)
    with pytest.raises(ValueError, match=r"the batch is empty: bpr_loss needs at least one"):
        bpr_loss(e, e, e)


@pytest.mark.parametrize(
    "shapes,match",
    [
        (
            ((2, 3), (2, 3), (3, 3)),
            r"must all have shape \(B, d\)\. Got \(2, 3\), \(2, 3\), \(3, 3\)",
        ),
        (((2, 3), (2, 4), (2, 3)), r"Got \(2, 3\), \(2, 4\), \(2, 3\)"),
        (((3,), (3,), (3,)), r"must all have shape \(B, d\)\. Got \(3,\), \(3,\), \(3,\)"),
    ],
)
def test_shape_mismatch_raises(shapes, match):
    with pytest.raises(ValueError, match=match):
        bpr_loss(*(torch.ones(s) for s in shapes))


@pytest.mark.parametrize(
    "reg,exc,match",
    [
        (-0.1, ValueError, r"reg must be a finite number in \[0\.0, inf\]\. Got -0\.1"),
        (math.nan, ValueError, r"reg must be a finite number .*Got nan"),
        (math.inf, ValueError, r"reg must be a finite number .*Got inf"),
        ("0.1", TypeError, r"reg must be a real number\. Got '0\.1'"),
        (np.array([0.1]), TypeError, r"reg must be a real number\. Got array"),
    ],
)
def test_bad_reg_raises(reg, exc, match):
    e = torch.ones(2, 2)
    with pytest.raises(exc, match=match):
        bpr_loss(e, e, e, (e,), reg=reg)
