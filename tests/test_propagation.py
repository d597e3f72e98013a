"""propagate / spmm against dense float64 sum_k alpha_k A^k X, forward and backward."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, note, settings
from hypothesis import strategies as st
from strategies import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    KERNELS,
    Graph,
    bipartite_graphs,
    dense_normalized_adjacency,
    dense_propagate,
    float_arrays,
    layer_alphas,
)

from lightgcn_sparse.adjacency import normalized_adjacency
from lightgcn_sparse.propagation import (
    layer_weights,
    propagate,
    propagate_rows,
    resolve_kernel,
    spmm,
)


def build(g: Graph, device="cpu", dtype=torch.float32, index_dtype=None) -> torch.Tensor:
    return normalized_adjacency(
        g.users,
        g.items,
        g.num_users,
        g.num_items,
        dtype=dtype,
        device=device,
        index_dtype=index_dtype,
    )


def max_degree(g: Graph) -> int:
    pairs = g.pairs()
    deg = [0] * g.n
    for u, i in pairs:
        deg[u] += 1
        deg[g.num_users + i] += 1
    return max(deg, default=0)


def tolerance(dtype: torch.dtype, num_layers: int, alpha, x: np.ndarray, max_deg: int) -> float:
    r"""Forward error bound for \sum_k alpha_k A^k x in ``dtype``.

    ||A||_2 <= 1 for the normalized adjacency and each row of A x sums at most ``max_deg``
    terms whose weights carry a few ulps, so layer k is off by at most
    k (max_deg + 3) eps ||x||; the weighted sum adds (K + 1) eps more. We allow 4x that,
    plus an absolute ``tiny`` per operation for products that underflow (alpha = 1e-210
    is 0 in float32).
    """
    info = torch.finfo(dtype)
    norm = float(np.linalg.norm(x.astype(np.float64)))
    ops = (num_layers + 1) * (max_deg + 4)
    return 4 * info.eps * ops * sum(alpha) * norm + 4 * info.tiny * ops


@st.composite
def propagation_cases(draw, dtypes=FLOAT_DTYPES):
    g = draw(bipartite_graphs())
    dtype = draw(st.sampled_from(dtypes))
    num_layers = draw(st.integers(0, 4), label="num_layers")
    alpha = draw(layer_alphas(num_layers), label="alpha")
    d = draw(st.integers(1, 4), label="d")
    x = draw(float_arrays((g.n, d), dtype), label="x0")
    kernel = draw(st.sampled_from(KERNELS), label="kernel")
    index_dtype = draw(st.sampled_from(INDEX_DTYPES), label="index_dtype")
    note(f"dtype={dtype} K={num_layers} d={d} kernel={kernel} index_dtype={index_dtype}")
    return g, dtype, num_layers, alpha, x, kernel, index_dtype


@given(case=propagation_cases())
def test_propagate_equals_dense_sum(device, case):
    g, dtype, num_layers, alpha, x, kernel, index_dtype = case
    adj = build(g, device, dtype, index_dtype)
    x0 = torch.from_numpy(x).to(device)
    y = propagate(adj, x0, num_layers, alpha, kernel=kernel)
    assert y.shape == x0.shape and y.dtype == dtype and y.device == x0.device
    weights = [1.0 / (num_layers + 1)] * (num_layers + 1) if alpha is None else alpha
    expected = dense_propagate(dense_normalized_adjacency(g), x, weights)
    tol = tolerance(dtype, num_layers, weights, x, max_degree(g))
    note(f"tol={tol:.3g}")
    np.testing.assert_allclose(y.cpu().double().numpy(), expected, rtol=0, atol=tol)


@given(case=propagation_cases(), seed=st.integers(0, 2**32 - 1))
def test_gradient_equals_dense_autograd(device, case, seed):
    g, dtype, num_layers, alpha, x, kernel, index_dtype = case
    adj = build(g, device, dtype, index_dtype)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(x.shape, generator=gen, dtype=torch.float64)  # (N, d) upstream gradient
    x0 = torch.from_numpy(x).to(device).requires_grad_(True)
    y = propagate(adj, x0, num_layers, alpha, kernel=kernel)
    assert y.requires_grad
    (y * w.to(device=device, dtype=dtype)).sum().backward()

    weights = layer_weights(num_layers, alpha)
    a_hat = torch.from_numpy(dense_normalized_adjacency(g))
    x_ref = torch.from_numpy(x).double().requires_grad_(True)
    h, y_ref = x_ref, weights[0] * x_ref
    for a in weights[1:]:
        h = a_hat @ h
        y_ref = y_ref + a * h
    (y_ref * w).sum().backward()
    tol = tolerance(dtype, num_layers, weights, w.numpy(), max_degree(g))
    torch.testing.assert_close(
        x0.grad.cpu().double(), x_ref.grad, rtol=0, atol=tol, msg=lambda m: f"{m}\ntol={tol}"
    )


@settings(max_examples=15)
@given(
    g=bipartite_graphs(max_users=6, max_items=6, max_edges=15),
    num_layers=st.integers(0, 4),
    kernel=st.sampled_from(KERNELS),
    index_dtype=st.sampled_from(INDEX_DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_gradcheck_float64(device, g, num_layers, kernel, index_dtype, seed):
    adj = build(g, device, torch.float64, index_dtype)
    gen = torch.Generator().manual_seed(seed)
    alpha = torch.rand(num_layers + 1, generator=gen, dtype=torch.float64).tolist()
    x0 = torch.randn(g.n, 2, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: propagate(adj, x, num_layers, alpha, kernel=kernel), (x0,)
    )


@given(case=propagation_cases())
def test_kernels_and_index_dtypes_agree(device, case):
    g, dtype, num_layers, alpha, x, _, _ = case
    x0 = torch.from_numpy(x).to(device)
    ref = None
    for index_dtype in (torch.int32, torch.int64):
        adj = build(g, device, dtype, index_dtype)
        for kernel in KERNELS:
            y = propagate(adj, x0, num_layers, alpha, kernel=kernel)
            if ref is None:
                ref = y
            weights = layer_weights(num_layers, alpha)
            tol = tolerance(dtype, num_layers, weights, x, max_degree(g))
            torch.testing.assert_close(y, ref, rtol=0, atol=2 * tol)


@given(case=propagation_cases())
def test_grad_and_no_grad_paths_agree(device, case):
    g, dtype, num_layers, alpha, x, kernel, index_dtype = case
    adj = build(g, device, dtype, index_dtype)
    x0 = torch.from_numpy(x).to(device)
    plain = propagate(adj, x0, num_layers, alpha, kernel=kernel)
    assert plain.grad_fn is None and not plain.requires_grad
    with torch.no_grad():
        under_no_grad = propagate(adj, x0.clone().requires_grad_(True), num_layers, alpha)
    assert under_no_grad.grad_fn is None
    tracked = propagate(adj, x0.clone().requires_grad_(True), num_layers, alpha, kernel=kernel)
    assert tracked.grad_fn is not None
    assert torch.equal(plain, tracked.detach())
    # auto resolves to a valid kernel and gives the same numbers up to rounding
    weights = layer_weights(num_layers, alpha)
    tol = tolerance(dtype, num_layers, weights, x, max_degree(g))
    torch.testing.assert_close(under_no_grad, plain, rtol=0, atol=2 * tol)
    assert torch.equal(x0, torch.from_numpy(x).to(device)), "x0 was modified in place"


@given(case=propagation_cases(), data=st.data())
def test_propagate_rows_equals_propagate_at_the_rows_and_its_gradient_the_dense_one(
    device, case, data
):
    """The training step's path: values bit for bit those of :func:`propagate` at the rows
    (the same sums in the same order), gradient the dense float64 one."""
    g, dtype, num_layers, alpha, x, kernel, index_dtype = case
    if g.n == 0:
        return
    rows = np.array(data.draw(st.lists(st.integers(0, g.n - 1), max_size=2 * g.n), label="rows"),
                    dtype=np.int64)  # fmt: skip
    adj = build(g, device, dtype, index_dtype)
    x0 = torch.from_numpy(x).to(device).requires_grad_(True)
    at = torch.from_numpy(rows).to(device)
    final, layer0 = propagate_rows(adj, x0, at, num_layers, alpha, kernel=kernel)
    assert final.shape == layer0.shape == (len(rows), x.shape[1]) and final.dtype == dtype
    full = propagate(adj, x0.detach(), num_layers, alpha, kernel=kernel)
    assert torch.equal(final.detach(), full[at]) and torch.equal(layer0.detach(), x0.detach()[at])

    gen = torch.Generator().manual_seed(len(rows))
    w, w0 = torch.randn((2, len(rows), x.shape[1]), generator=gen, dtype=torch.float64)
    ((final * w.to(device, dtype)).sum() + (layer0 * w0.to(device, dtype)).sum()).backward()
    weights = layer_weights(num_layers, alpha)
    a_hat = dense_normalized_adjacency(g)
    g_dense, g0 = np.zeros_like(x, dtype=np.float64), np.zeros_like(x, dtype=np.float64)
    np.add.at(g_dense, rows, w.to(dtype).double().numpy())
    np.add.at(g0, rows, w0.to(dtype).double().numpy())
    expected = dense_propagate(a_hat, g_dense, weights) + g0  # A symmetric: P^T = P
    tol = tolerance(dtype, num_layers, weights, g_dense, max_degree(g))
    tol += 4 * torch.finfo(dtype).eps * float(np.linalg.norm(g0 + weights[0] * g_dense))
    note(f"tol={tol:.3g}")
    np.testing.assert_allclose(x0.grad.cpu().double().numpy(), expected, rtol=0, atol=tol)


def test_propagate_rows_rejects_bad_rows(adj5):
    x0 = torch.zeros(5, 2)
    with pytest.raises(TypeError, match="rows must be a 1-D int64 tensor"):
        propagate_rows(adj5, x0, torch.tensor([0.5]), 2)
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 5\)"):
        propagate_rows(adj5, x0, torch.tensor([5]), 2)


@given(g=bipartite_graphs(), kernel=st.sampled_from(KERNELS), dtype=st.sampled_from(FLOAT_DTYPES))
def test_spmm_equals_dense_product(device, g, kernel, dtype):
    adj = build(g, device, dtype)
    x = torch.arange(g.n * 3, dtype=dtype).reshape(g.n, 3) / 7 - 1  # (N, 3)
    y = spmm(adj, x.to(device), kernel)
    expected = dense_normalized_adjacency(g) @ x.double().numpy()
    tol = 4 * torch.finfo(dtype).eps * (max_degree(g) + 4) * float(x.double().norm())
    np.testing.assert_allclose(y.cpu().double().numpy(), expected, rtol=0, atol=tol)


def test_noncontiguous_x0(device):
    g = Graph(3, 4, np.array([0, 0, 1, 2]), np.array([0, 1, 1, 3]))
    adj = build(g, device, torch.float64)
    x = torch.randn(3, g.n, dtype=torch.float64, device=device).T  # (N, 3) non-contiguous
    assert not x.is_contiguous()
    y = propagate(adj, x, 2, [0.2, 0.3, 0.5])
    expected = dense_propagate(dense_normalized_adjacency(g), x.cpu().numpy(), [0.2, 0.3, 0.5])
    np.testing.assert_allclose(y.cpu().numpy(), expected, atol=1e-12)


def test_default_alpha_is_uniform_mean():
    assert layer_weights(3, None) == [0.25] * 4
    assert layer_weights(0, None) == [1.0]


@pytest.mark.parametrize(
    "alpha", [(0.5, 0.5), np.array([0.5, 0.5]), torch.tensor([0.5, 0.5]), [1, 0]]
)
def test_alpha_containers(alpha):
    out = layer_weights(1, alpha)
    assert isinstance(out, list) and len(out) == 2 and all(isinstance(a, float) for a in out)


def test_empty_graph_propagates_only_layer_zero(device):
    adj = normalized_adjacency([], [], 2, 3, device=device)
    x = torch.ones(5, 2, device=device)
    for kernel in KERNELS:
        y = propagate(adj, x, 3, [0.5, 1.0, 1.0, 1.0], kernel=kernel)
        assert torch.equal(y, 0.5 * x)
    assert propagate(normalized_adjacency([], [], 0, 0), torch.ones(0, 4), 2).shape == (0, 4)


def test_resolve_kernel():
    assert resolve_kernel("auto", torch.device("cpu")) in KERNELS
    assert resolve_kernel("sparse_mm", torch.device("cpu")) == "sparse_mm"
    with pytest.raises(ValueError, match=r"kernel must be 'auto' or one of .*Got 'dense'"):
        resolve_kernel("dense", torch.device("cpu"))


# --- bad input --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adj5() -> torch.Tensor:
    """A float32 graph of 2 users and 3 items (N = 5)."""
    return normalized_adjacency([0, 1, 1], [0, 1, 2], 2, 3)


def _csr(dense: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # torch warns that CSR support is "beta"
        warnings.simplefilter("ignore", UserWarning)
        return dense.to_sparse_csr()


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"num_layers": -1}, ValueError, r"num_layers must be an int in \[0, inf\)\. Got -1 "),
        ({"num_layers": 1.0}, TypeError, r"num_layers must be an int .*Got 1\.0"),
        ({"num_layers": None}, TypeError, r"num_layers must be an int .*Got None"),
        ({"alpha": [0.5, 0.5]}, ValueError, r"alpha must have num_layers \+ 1 = 3 entries\. Got 2"),
        ({"alpha": [0.2] * 4}, ValueError, r"alpha must have num_layers \+ 1 = 3 entries\. Got 4"),
        (
            {"alpha": [0.5, -0.5, 1.0]},
            ValueError,
            r"alpha\[1\] must be .*\[0\.0, inf\]\. Got -0\.5",
        ),
        ({"alpha": [math.nan, 0, 0]}, ValueError, r"alpha\[0\] must be a finite .*Got nan"),
        ({"alpha": [0, 0, math.inf]}, ValueError, r"alpha\[2\] must be a finite .*Got inf"),
        ({"alpha": [0, "a", 0]}, TypeError, r"alpha\[1\] must be a real number\. Got 'a'"),
        ({"alpha": 0.5}, TypeError, r"alpha must be a sequence .*Got the scalar 0\.5"),
        ({"kernel": "dense"}, ValueError, r"kernel must be 'auto' or one of .*Got 'dense'"),
        ({"x0": torch.ones(5)}, ValueError, r"x0 must have shape \(N, d\) with N = 5\. Got \(5,\)"),
        ({"x0": torch.ones(6, 2)}, ValueError, r"x0 must have shape .*N = 5\. Got \(6, 2\)"),
        ({"x0": torch.ones(5, 2, 1)}, ValueError, r"x0 must have shape .*Got \(5, 2, 1\)"),
        ({"x0": torch.ones(5, 2, dtype=torch.float64)}, TypeError, r"x0 has dtype torch\.float64"),
        ({"x0": torch.ones(5, 2, dtype=torch.int64)}, TypeError, r"x0 has dtype torch\.int64 but"),
        (
            {"x0": np.ones((5, 2), np.float32)},
            TypeError,
            r"x0 must be a torch\.Tensor\. Got ndarray",
        ),
    ],
)
def test_bad_arguments_raise(adj5, kwargs, exc, match):
    args = {"x0": torch.ones(5, 2), "num_layers": 2, "alpha": None} | kwargs
    kernel = args.pop("kernel", "auto")
    with pytest.raises(exc, match=match):
        propagate(adj5, args["x0"], args["num_layers"], args["alpha"], kernel=kernel)


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: torch.eye(5), TypeError, r"adj must be a torch\.sparse_csr_tensor .*strided"),
        (lambda: torch.eye(5).to_sparse(), TypeError, r"adj must be .*Got torch\.sparse_coo"),
        (lambda: "adj", TypeError, r"adj must be a torch\.sparse_csr_tensor .*Got str"),
        (
            lambda: _csr(torch.ones(5, 4)),
            ValueError,
            r"adj must be square 2-D\. Got shape \(5, 4\)",
        ),
    ],
    ids=["dense", "coo", "str", "non-square"],
)
def test_non_csr_adj_raises(make, exc, match):
    with pytest.raises(exc, match=match):
        propagate(make(), torch.ones(5, 2), 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_x0_on_other_device_raises(adj5):
    with pytest.raises(ValueError, match=r"x0 is on cuda:0 but adj is on cpu"):
        propagate(adj5, torch.ones(5, 2, device="cuda"), 1)


@pytest.mark.parametrize("kernel", KERNELS)
def test_zero_width_embeddings(device, kernel):
    adj = normalized_adjacency([0, 1], [0, 1], 2, 2, device=device)
    x = torch.ones(4, 0, device=device, requires_grad=True)
    y = propagate(adj, x, 2, kernel=kernel)
    assert y.shape == (4, 0)
    y.sum().backward()
    assert x.grad.shape == (4, 0)


@pytest.mark.parametrize("threads", [1, 2])
def test_two_block_cpu_path_equals_one_call(monkeypatch, threads):
    """spmm's equal-nnz two-block split (several CPU threads) computes the same product."""
    from lightgcn_sparse import graph as graph_module
    from lightgcn_sparse import propagation

    gen = torch.Generator().manual_seed(3)
    users = torch.randint(0, 40, (400,), generator=gen)
    items = torch.randint(0, 15, (400,), generator=gen)
    adj = normalized_adjacency(users, items, 45, 15, dtype=torch.float64)  # 5 isolated users
    x = torch.randn(60, 7, dtype=torch.float64, generator=gen)
    whole = propagation.spmm(adj, x, "embedding_bag")
    monkeypatch.setattr(graph_module, "SPLIT_MIN_NNZ", 0)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        split = propagation.spmm(adj, x, "embedding_bag")
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(split, whole, rtol=0, atol=1e-12)
    torch.testing.assert_close(split, adj.to_dense() @ x)


def test_products_of_a_table_that_requires_grad_run_embedding_bags_forward_only_kernel():
    """Given a weight that requires grad, ``embedding_bag`` runs its training variant (bag
    bookkeeping for a backward it will never run here) even under no_grad: the products
    detach their input, so inference and the step's first product take the lean kernel."""
    from torch.profiler import profile

    gen = torch.Generator().manual_seed(5)
    adj = normalized_adjacency(torch.randint(0, 20, (100,), generator=gen),
                               torch.randint(0, 9, (100,), generator=gen), 20, 9)  # fmt: skip
    x0 = torch.randn(29, 4, generator=gen, requires_grad=True)
    with profile() as prof:
        with torch.no_grad():
            propagate(adj, x0, 2, kernel="embedding_bag")
        propagate(adj, x0, 2, kernel="embedding_bag").sum().backward()
    names = {e.key for e in prof.key_averages()}
    assert "aten::_embedding_bag_forward_only" in names
    assert "aten::_embedding_bag" not in names


@pytest.mark.parametrize("kernel", KERNELS)
def test_spmm_stays_differentiable_in_x(kernel):
    """The products' detaching (no grad mode) leaves spmm under grad mode as it was."""
    gen = torch.Generator().manual_seed(6)
    adj = normalized_adjacency(torch.randint(0, 10, (40,), generator=gen),
                               torch.randint(0, 5, (40,), generator=gen), 10, 5)  # fmt: skip
    x = torch.randn(15, 3, generator=gen, requires_grad=True)
    spmm(adj, x, kernel).sum().backward()
    torch.testing.assert_close(x.grad, adj.to_dense().T @ torch.ones(15, 3))


@pytest.mark.parametrize(
    "x,exc,match",
    [
        (torch.ones(9, 4), ValueError, r"x must be a floating \(N, d\) tensor with N = 5"),
        (torch.ones(3, 4), ValueError, r"with N = 5. Got shape \(3, 4\)"),
        (torch.ones(5), ValueError, r"Got shape \(5,\)"),
        (torch.ones(5, 4, dtype=torch.int64), ValueError, r"dtype torch.int64"),
        (np.ones((5, 4), np.float32), TypeError, r"x must be a torch.Tensor"),
        (torch.ones(5, 4, device="meta"), ValueError, r"x is on meta but adj is on cpu"),
    ],
)
def test_spmm_refuses_an_x_that_is_not_one_row_per_node(adj5, x, exc, match):
    for kernel in ("embedding_bag", "sparse_mm"):
        with pytest.raises(exc, match=match):
            spmm(adj5, x, kernel)


def test_propagation_refuses_a_non_symmetric_adjacency_whose_gradient_would_be_wrong(adj5):
    dense = adj5.to_dense()
    dense[0, 2] += 0.25  # one entry without its mirror
    skewed = _csr(dense)
    x0 = torch.randn(5, 3, requires_grad=True)
    with pytest.raises(ValueError, match="adj must be symmetric"):
        propagate(skewed, x0, 2)
    with pytest.raises(ValueError, match="adj must be symmetric"):
        propagate_rows(skewed, x0, torch.tensor([0, 1]), 2)
    assert spmm(skewed, x0.detach()).shape == (5, 3)  # one product needs no symmetry
    mirrored = _csr(dense + dense.T)  # symmetric, checked once and then remembered
    zero = torch.sparse_csr_tensor(  # an explicit zero without its mirror: still symmetric
        torch.tensor([0, 2, 2]),
        torch.tensor([0, 1]),
        torch.tensor([1.0, 0.0]),
        size=(2, 2),
        check_invariants=True,
    )
    propagate(zero, torch.ones(2, 1), 1)
    propagate(mirrored, x0, 2).sum().backward()
    assert mirrored.__dict__["_lightgcn_symmetric"] is True
