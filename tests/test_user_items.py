"""UserItemIndex: the deduplicated CSR user -> items index, against Python sets."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import Graph, bipartite_graphs

from lightgcn_sparse.user_items import (
    UserItemIndex,
    as_user_items,
    user_items_from_csr,
    user_items_from_pairs,
)


def from_graph(g: Graph, device="cpu") -> UserItemIndex:
    return user_items_from_pairs(g.users, g.items, g.num_users, g.num_items, device=device)


def ref_lists(g: Graph) -> list[list[int]]:
    rows: list[list[int]] = [[] for _ in range(g.num_users)]
    for u, i in sorted(g.pairs()):
        rows[u].append(i)
    return rows


@given(g=bipartite_graphs())
def test_from_pairs_equals_sorted_sets(device, g):
    ui = from_graph(g, device)
    rows = ref_lists(g)
    assert ui.num_users == g.num_users and ui.num_items == g.num_items
    assert ui.nnz == len(g.pairs())
    assert ui.device.type == device
    assert ui.indptr.dtype == ui.indices.dtype == torch.int64
    indptr, indices = ui.indptr.tolist(), ui.indices.tolist()
    assert indptr[0] == 0 and indptr[-1] == ui.nnz
    for u in range(g.num_users):
        assert indices[indptr[u] : indptr[u + 1]] == rows[u]
    assert ui.degrees().tolist() == [len(r) for r in rows]
    assert ui.row_ids().tolist() == [u for u, r in enumerate(rows) for _ in r]
    keys = ui.keys().tolist()
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


@given(g=bipartite_graphs(min_users=1, min_items=1), data=st.data())
def test_contains_and_gather(device, g, data):
    ui = from_graph(g, device)
    pairs = g.pairs()
    users = data.draw(st.lists(st.integers(0, g.num_users - 1), max_size=10), label="users")
    items = data.draw(
        st.lists(st.integers(0, g.num_items - 1), min_size=len(users), max_size=len(users))
    )
    u_t = torch.tensor(users, dtype=torch.int64, device=device)
    i_t = torch.tensor(items, dtype=torch.int64, device=device)
    got = ui.contains(u_t, i_t).tolist()
    assert got == [(u, i) in pairs for u, i in zip(users, items)]
    row, item = ui.gather(u_t)
    rows = ref_lists(g)
    expected = [(j, i) for j, u in enumerate(users) for i in rows[u]]
    assert list(zip(row.tolist(), item.tolist())) == expected


@given(g=bipartite_graphs())
def test_from_csr_equals_from_pairs(g):
    coo = sp.coo_matrix(
        (np.ones(len(g.users)), (g.users, g.items)), shape=(g.num_users, g.num_items)
    )  # duplicates are summed, still one interaction
    for matrix in (coo, coo.tocsr(), coo.tocsc()):
        a = user_items_from_csr(matrix)
        b = from_graph(g)
        assert torch.equal(a.indptr, b.indptr) and torch.equal(a.indices, b.indices)
        assert a.num_items == b.num_items


def test_from_csr_drops_explicit_zeros():
    m = sp.csr_matrix((np.array([1.0, 0.0, 2.0]), np.array([0, 1, 2]), np.array([0, 2, 3])))
    ui = user_items_from_csr(m)
    assert ui.indices.tolist() == [0, 2] and ui.indptr.tolist() == [0, 1, 2]


def test_from_csr_duplicates_summing_to_zero_are_dropped():
    """A non-canonical CSR holding +1 and -1 at one position stores no interaction there."""
    m = sp.csr_matrix(
        (np.array([1.0, -1.0, 1.0]), np.array([0, 0, 1]), np.array([0, 3])), shape=(1, 2)
    )
    assert not m.has_canonical_format
    ui = user_items_from_csr(m)
    assert ui.indices.tolist() == [1]


def test_to_device_round_trip(device):
    ui = user_items_from_pairs([0, 1, 1], [2, 0, 1], 3, 3)
    moved = ui.to(device)
    assert moved.device.type == device
    back = moved.to("cpu")
    assert torch.equal(back.indptr, ui.indptr) and torch.equal(back.indices, ui.indices)


def test_as_user_items():
    ui = user_items_from_pairs([0], [1], 2, 3)
    assert as_user_items(ui, 2) is not None
    m = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0]]))
    assert as_user_items(m, 2).indices.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"user_items must have 3 rows \(users\)\. Got 2"):
        as_user_items(m, 3)
    with pytest.raises(ValueError, match=r"train must have 5 rows \(users\)\. Got 2"):
        as_user_items(ui, 5, name="train")


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "users,items,num_users,num_items,exc,match",
    [
        ([0, 1], [0], 2, 2, ValueError, r"same length\. Got 2 and 1"),
        ([-1], [0], 2, 2, ValueError, r"users must lie in \[0, 2\)\. Got id -1"),
        ([0], [2], 2, 2, ValueError, r"items must lie in \[0, 2\)\. Got id 2"),
        ([0.5], [0], 2, 2, TypeError, r"users must hold integer ids\. Got dtype float64"),
        ([0], [0], -2, 2, ValueError, r"num_users must be an int in \[0, inf\)\. Got -2"),
    ],
)
def test_bad_pairs_raise(users, items, num_users, num_items, exc, match):
    with pytest.raises(exc, match=match):
        user_items_from_pairs(users, items, num_users, num_items)


def test_bad_matrices_raise():
    with pytest.raises(TypeError, match=r"user_items must be a scipy\.sparse .*Got ndarray"):
        user_items_from_csr(np.eye(2))
    with pytest.raises(ValueError, match=r"train holds NaN or infinite values"):
        user_items_from_csr(sp.csr_matrix(np.array([[np.nan, 1.0]])), name="train")
