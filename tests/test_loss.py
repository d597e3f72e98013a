"""bpr_loss against a naive float64 formula, and its behaviour at extreme score gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st
from strategies import FLOAT_DTYPES, float_arrays

from lightgcn_sparse.loss import bpr_loss, bpr_loss_indexed


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
    "kwargs,exc,match",
    [
        ({"layer0": torch.ones(5, 3)}, TypeError, r"layer0 must be a tuple of \(B, d\) tensors"),
        ({"layer0": (torch.ones(7, 2),)}, ValueError, r"layer0 must hold \(5, d\) tensors"),
        ({"weight": torch.ones(4)}, ValueError, r"weight must be a \(5,\) tensor"),
        ({"weight": [1, 1, 1, 1, 1]}, ValueError, r"weight must be a \(5,\) tensor"),
    ],
)
def test_layer0_and_weight_must_fit_the_batch(kwargs, exc, match):
    e = torch.ones(5, 3)
    with pytest.raises(exc, match=match):
        bpr_loss(e, e, e, reg=1e-4, **kwargs)
    with pytest.raises(TypeError, match="user_emb must be a torch.Tensor. Got ndarray"):
        bpr_loss(np.ones((5, 3)), e, e)


def test_a_batch_of_zero_weights_counts_no_triple():
    e = torch.randn(5, 3, requires_grad=True)
    loss = bpr_loss(e, e * 2, e * 3, (e,), reg=1e-4, weight=torch.zeros(5))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(e.grad, torch.zeros_like(e))


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


# ---------------------------------------------------------------- bpr_loss_indexed


@st.composite
def indexed_batches(draw):
    """A table, the rows of B triples in it (repeats allowed), and a reg."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    m = draw(st.integers(1, 9), label="M")
    b = draw(st.integers(1, 8), label="B")
    d = draw(st.integers(1, 6), label="d")
    table = draw(float_arrays((m, d), dtype, bound=3.0))
    layer0 = draw(float_arrays((m, d), dtype, bound=3.0))
    index = np.array(draw(st.lists(st.integers(0, m - 1), min_size=3 * b, max_size=3 * b)))
    reg = draw(st.sampled_from([0.0, 1e-4, 0.5]) | st.floats(0, 2), label="reg")
    note(f"dtype={dtype} M={m} B={b} d={d} reg={reg} index={index.tolist()}")
    return dtype, table, layer0, index, reg


@given(case=indexed_batches())
def test_indexed_equals_bpr_loss_of_the_gathered_rows(device, case):
    """Value and both gradients equal those of bpr_loss on table[index] and layer0[index]
    (autograd's gathers), within the float64 reference's tolerance of each."""
    dtype, table, layer0, index, reg = case
    idx = torch.from_numpy(index).to(device)
    t, x = (torch.from_numpy(a).to(device).requires_grad_(True) for a in (table, layer0))
    loss = bpr_loss_indexed(t, idx, x, reg=reg)
    assert loss.shape == () and loss.dtype == dtype
    loss.backward()
    rt, rx = (torch.from_numpy(a).double().requires_grad_(True) for a in (table, layer0))
    ref = bpr_loss(*rt[idx.cpu()].chunk(3), rx[idx.cpu()].chunk(3), reg=reg)
    ref.backward()
    d = table.shape[1]
    tol = 64 * torch.finfo(dtype).eps * (d * 9 + 1) * (1 + reg * 3 * d * 9) * len(index)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=tol, abs=tol)
    torch.testing.assert_close(t.grad.cpu().double(), rt.grad, rtol=tol, atol=tol)
    want = rx.grad if rx.grad is not None else torch.zeros_like(rx)
    got = x.grad.cpu().double() if x.grad is not None else torch.zeros_like(rx)
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_indexed_gradcheck_float64():
    gen = torch.Generator().manual_seed(1)
    table, layer0 = (torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
                     for _ in range(2))  # fmt: skip
    index = torch.tensor([0, 3, 3, 1, 4, 3, 2, 0, 0])  # repeats within and across roles
    fn = lambda t, x: bpr_loss_indexed(t, index, x, reg=0.7)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (table, layer0))


def test_indexed_gradient_is_embeddings_backward_bit_for_bit():
    """The table's gradient sums each row's occurrences in batch order: F.embedding's
    backward (deterministic on CPU) gives the same float32 sums, bit for bit, and a second
    run repeats them."""
    gen = torch.Generator().manual_seed(2)
    table = torch.randn(40, 16, generator=gen, requires_grad=True)
    index = torch.randint(0, 40, (3 * 300,), generator=gen)  # many repeats per row
    grads = []
    for _ in range(2):
        table.grad = None
        bpr_loss_indexed(table, index).backward()
        grads.append(table.grad.clone())
    assert torch.equal(grads[0], grads[1])
    # the per-triple gradients bpr_loss_indexed writes, summed by F.embedding's backward
    rows = table.detach()[index].view(3, -1, 16)
    gap = rows[1] - rows[2]
    s = torch.sigmoid(-torch.linalg.vecdot(rows[0], gap)) * (1.0 / 300)
    g = torch.cat([gap * -s[:, None], rows[0] * -s[:, None], rows[0] * s[:, None]])
    leaf = table.detach().clone().requires_grad_(True)
    torch.nn.functional.embedding(index, leaf).backward(g)
    assert torch.equal(grads[0], leaf.grad)


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.zeros(4), torch.zeros(3, dtype=torch.int64)), r"table must have shape \(M, d\)"),
        ((torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64)), r"index must be a 1-D int64"),
        ((torch.zeros(4, 2), torch.zeros(3, dtype=torch.int32)), r"index must be a 1-D int64"),
        ((torch.zeros(4, 2), torch.zeros(0, dtype=torch.int64)), r"the batch is empty"),
        ((torch.zeros(4, 2), torch.tensor([0, 4, 1])), r"index must lie in \[0, 4\)"),
        ((torch.zeros(4, 2), torch.tensor([0, -1, 1])), r"index must lie in \[0, 4\)"),
        ((torch.zeros(4, 2), torch.zeros(3, dtype=torch.int64), torch.zeros(3, 2)),
         r"layer0 must have the table's shape \(4, 2\)"),
    ],
)
def test_indexed_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        bpr_loss_indexed(*args)


def test_indexed_rejects_non_tensors_and_mixed_devices():
    with pytest.raises(TypeError, match="index must be a torch.Tensor. Got list"):
        bpr_loss_indexed(torch.zeros(4, 2), [0, 1, 2])
    with pytest.raises(ValueError, match="must be on one device"):
        bpr_loss_indexed(torch.zeros(4, 2), torch.zeros(3, dtype=torch.int64, device="meta"))
