"""normalized_adjacency against a dense float64 D^-1/2 A D^-1/2 on random bipartite graphs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st
from strategies import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    Graph,
    bipartite_graphs,
    csr_to_dense,
    dense_normalized_adjacency,
)

from lightgcn_sparse.adjacency import check_adjacency, normalized_adjacency
from lightgcn_sparse.propagation import check_symmetric


def build(g: Graph, device="cpu", **kw) -> torch.Tensor:
    return normalized_adjacency(g.users, g.items, g.num_users, g.num_items, device=device, **kw)


def check_csr_structure(adj: torch.Tensor, index_dtype: torch.dtype) -> None:
    """The CSR invariants torch relies on, checked by hand."""
    crow, col = adj.crow_indices().cpu(), adj.col_indices().cpu()
    n = adj.shape[0]
    assert crow.dtype == col.dtype == index_dtype
    assert crow.numel() == n + 1
    assert int(crow[0]) == 0 and int(crow[-1]) == col.numel() == adj.values().numel()
    assert bool((crow[1:] >= crow[:-1]).all())
    if col.numel():
        assert 0 <= int(col.min()) and int(col.max()) < n
    for r in range(n):
        row = col[int(crow[r]) : int(crow[r + 1])]
        assert bool((row[1:] > row[:-1]).all()), f"row {r} columns not strictly sorted: {row}"


@given(g=bipartite_graphs(), dtype=st.sampled_from(FLOAT_DTYPES), idx=st.sampled_from(INDEX_DTYPES))
def test_csr_equals_dense_reference(device, g, dtype, idx):
    adj = build(g, device, dtype=dtype, index_dtype=idx)
    assert adj.layout == torch.sparse_csr
    assert adj.shape == (g.n, g.n)
    assert adj.dtype == dtype
    assert adj.device.type == device
    check_csr_structure(adj, torch.int32 if idx is None else idx)
    # one stored entry per distinct edge and direction: duplicates count once
    assert adj.values().numel() == 2 * len(g.pairs())
    assert bool(torch.isfinite(adj.values()).all())
    expected = dense_normalized_adjacency(g)
    # each value is two rsqrt's and a product: a few ulps of the value dtype
    tol = 8 * torch.finfo(dtype).eps
    np.testing.assert_allclose(csr_to_dense(adj), expected, rtol=tol, atol=tol)
    assert check_symmetric(adj)


@given(g=bipartite_graphs(), dtype=st.sampled_from(FLOAT_DTYPES))
def test_int32_and_int64_indices_agree(device, g, dtype):
    a32 = build(g, device, dtype=dtype, index_dtype=torch.int32)
    a64 = build(g, device, dtype=dtype, index_dtype=torch.int64)
    assert torch.equal(a32.crow_indices().long(), a64.crow_indices())
    assert torch.equal(a32.col_indices().long(), a64.col_indices())
    assert torch.equal(a32.values(), a64.values())


@given(g=bipartite_graphs())
def test_isolated_nodes_have_empty_rows_and_no_nan(device, g):
    adj = build(g, device)
    crow = adj.crow_indices().cpu().long()
    row_nnz = (crow[1:] - crow[:-1]).numpy()
    deg = np.zeros(g.n, dtype=np.int64)
    for u, i in g.pairs():
        deg[u] += 1
        deg[g.num_users + i] += 1
    note(f"degrees {deg.tolist()}")
    np.testing.assert_array_equal(row_nnz, deg)
    assert not bool(torch.isnan(adj.values()).any() or torch.isinf(adj.values()).any())


@given(g=bipartite_graphs(min_users=1, min_items=1))
def test_input_containers_agree(g):
    """Lists, numpy arrays and tensors of either integer width build the same matrix."""
    ref = build(g)
    for users, items in [
        (g.users.tolist(), g.items.tolist()),
        (g.users.astype(np.int32), g.items.astype(np.int16)),
        (torch.from_numpy(g.users).int(), torch.from_numpy(g.items)),
    ]:
        other = normalized_adjacency(users, items, g.num_users, g.num_items)
        assert torch.equal(other.crow_indices(), ref.crow_indices())
        assert torch.equal(other.col_indices(), ref.col_indices())
        assert torch.equal(other.values(), ref.values())


def test_single_edge(device):
    adj = normalized_adjacency([1], [2], 3, 4, device=device, dtype=torch.float64)
    dense = csr_to_dense(adj)
    expected = np.zeros((7, 7))
    expected[1, 3 + 2] = expected[3 + 2, 1] = 1.0
    np.testing.assert_array_equal(dense, expected)


def test_duplicates_count_once(device):
    once = normalized_adjacency([0, 0, 1], [0, 1, 1], 2, 2, device=device)
    thrice = normalized_adjacency([0, 0, 0, 1, 0, 1], [0, 1, 0, 1, 0, 1], 2, 2, device=device)
    assert torch.equal(once.values(), thrice.values())
    assert torch.equal(once.col_indices(), thrice.col_indices())
    # user 0 has 2 items, item 1 has 2 users: 1 / sqrt(2 * 2)
    assert csr_to_dense(once)[0, 2 + 1] == pytest.approx(0.5)


@pytest.mark.parametrize("num_users,num_items", [(0, 0), (3, 0), (0, 4), (3, 4)])
def test_empty_edge_list(device, num_users, num_items):
    adj = normalized_adjacency([], [], num_users, num_items, device=device)
    n = num_users + num_items
    assert adj.shape == (n, n)
    assert adj.values().numel() == 0
    assert torch.equal(adj.crow_indices().cpu(), torch.zeros(n + 1, dtype=torch.int32))


def test_default_index_dtype_is_int32_and_values_float32():
    adj = normalized_adjacency([0], [0], 1, 1)
    assert adj.crow_indices().dtype == torch.int32
    assert adj.col_indices().dtype == torch.int32
    assert adj.dtype == torch.float32


def test_star_graph_values():
    """One user with 4 items of degree 1 each: weight 1/sqrt(4 * 1) = 0.5 everywhere."""
    adj = normalized_adjacency([0, 0, 0, 0], [0, 1, 2, 3], 1, 4, dtype=torch.float64)
    assert torch.equal(adj.values(), torch.full((8,), 0.5, dtype=torch.float64))


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "users,items,num_users,num_items,exc,match",
    [
        ([-1], [0], 2, 2, ValueError, r"users must lie in \[0, 2\)\. Got id -1"),
        ([2], [0], 2, 2, ValueError, r"users must lie in \[0, 2\)\. Got id 2"),
        ([0], [-3], 2, 2, ValueError, r"items must lie in \[0, 2\)\. Got id -3"),
        ([0], [5], 2, 2, ValueError, r"items must lie in \[0, 2\)\. Got id 5"),
        ([0, 1], [0], 2, 2, ValueError, r"same length\. Got 2 and 1"),
        ([0.0], [0], 2, 2, TypeError, r"users must hold integer ids\. Got dtype float64"),
        ([0], np.array([1.5]), 2, 2, TypeError, r"items must hold integer ids\. Got dtype float"),
        (torch.tensor([0.0]), [0], 2, 2, TypeError, r"users .*dtype torch\.float32"),
        ([True], [0], 2, 2, TypeError, r"users must hold integer ids\. Got dtype bool"),
        ([[0]], [0], 2, 2, ValueError, r"users must be 1-D\. Got shape \(1, 1\)"),
        ([0], [0], -1, 2, ValueError, r"num_users must be an int in \[0, inf\)\. Got -1"),
        ([0], [0], 2, -5, ValueError, r"num_items must be an int in \[0, inf\)\. Got -5"),
        ([0], [0], 2.0, 2, TypeError, r"num_users must be an int .*Got 2\.0"),
        ([0], [0], 2, "2", TypeError, r"num_items must be an int .*Got '2'"),
        ("ab", [0], 2, 2, TypeError, r"users must hold integer ids"),
        ({0}, [0], 2, 2, TypeError, r"users must be a 1-D tensor or array .*Got set"),
    ],
)
def test_bad_ids_raise(users, items, num_users, num_items, exc, match):
    with pytest.raises(exc, match=match):
        normalized_adjacency(users, items, num_users, num_items)


def test_ids_out_of_range_on_device(device):
    with pytest.raises(ValueError, match=r"items must lie in \[0, 3\)\. Got id 3"):
        normalized_adjacency(torch.tensor([0], device=device), torch.tensor([3]), 1, 3)


def test_bad_dtypes_raise():
    with pytest.raises(
        TypeError, match=r"dtype must be a floating torch\.dtype\. Got torch\.int64"
    ):
        normalized_adjacency([0], [0], 1, 1, dtype=torch.int64)
    with pytest.raises(TypeError, match=r"index_dtype must be .*Got torch\.int16"):
        normalized_adjacency([0], [0], 1, 1, index_dtype=torch.int16)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is absent")
def test_cuda_device_without_cuda_raises():
    with pytest.raises(ValueError, match=r"device is 'cuda' but CUDA is not available"):
        normalized_adjacency([0], [0], 1, 1, device="cuda")


def test_unknown_device_raises():
    with pytest.raises(ValueError, match=r"device must name a torch device\. Got 'gpu0'"):
        normalized_adjacency([0], [0], 1, 1, device="gpu0")


def _csr(dense: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # torch warns that CSR support is "beta"
        warnings.simplefilter("ignore", UserWarning)
        return dense.to_sparse_csr()


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (
            lambda: torch.eye(3),
            TypeError,
            r"adj must be a torch\.sparse_csr_tensor .*torch\.strided",
        ),
        (lambda: torch.eye(3).to_sparse(), TypeError, r"adj must be .*Got torch\.sparse_coo"),
        (lambda: np.eye(3), TypeError, r"adj must be .*Got ndarray"),
        (
            lambda: _csr(torch.ones(2, 3)),
            ValueError,
            r"adj must be square 2-D\. Got shape \(2, 3\)",
        ),
    ],
    ids=["dense", "coo", "numpy", "non-square"],
)
def test_check_adjacency_rejects(make, exc, match):
    with pytest.raises(exc, match=match):
        check_adjacency(make())
