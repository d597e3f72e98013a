"""Hypothesis strategies for the core engine, and the dense float64 references they feed.

Graphs are tiny (up to about a dozen users and items) so that the dense references stay
cheap; they deliberately include isolated users and items, duplicate edges, a single
edge and the empty edge list.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

MAX_USERS = 12
MAX_ITEMS = 12
MAX_EDGES = 40

FLOAT_DTYPES = (torch.float32, torch.float64)
INDEX_DTYPES = (None, torch.int32, torch.int64)
KERNELS = ("embedding_bag", "sparse_mm")


class Graph(NamedTuple):
    """A user-item bipartite graph as (E,) id arrays; edges may repeat."""

    num_users: int
    num_items: int
    users: np.ndarray  # (E,) int64
    items: np.ndarray  # (E,) int64

    @property
    def n(self) -> int:
        return self.num_users + self.num_items

    def pairs(self) -> set[tuple[int, int]]:
        """The distinct (user, item) interactions."""
        return set(zip(self.users.tolist(), self.items.tolist()))


@st.composite
def bipartite_graphs(
    draw,
    min_users: int = 0,
    max_users: int = MAX_USERS,
    min_items: int = 0,
    max_items: int = MAX_ITEMS,
    max_edges: int = MAX_EDGES,
) -> Graph:
    """Draw ``Graph(num_users, num_items, users, items)``.

    Sizes run from ``min_*`` to ``max_*`` (0 allowed); the edge list may be empty, hold a
    single edge, or repeat edges; unmentioned users and items are isolated nodes.
    """
    num_users = draw(st.integers(min_users, max_users), label="num_users")
    num_items = draw(st.integers(min_items, max_items), label="num_items")
    if num_users == 0 or num_items == 0:
        edges: list[tuple[int, int]] = []
    else:
        edge = st.tuples(st.integers(0, num_users - 1), st.integers(0, num_items - 1))
        edges = draw(st.lists(edge, max_size=max_edges), label="edges")
        if edges:  # repeat some edges verbatim so duplicates are common, not just possible
            edges = edges + draw(st.lists(st.sampled_from(edges), max_size=5), label="dups")
            edges = draw(st.permutations(edges))
    users = np.array([u for u, _ in edges], dtype=np.int64)
    items = np.array([i for _, i in edges], dtype=np.int64)
    g = Graph(num_users, num_items, users, items)
    note(f"graph: U={num_users} I={num_items} E={len(edges)} unique={len(g.pairs())}")
    return g


@st.composite
def layer_alphas(draw, num_layers: int) -> list[float] | None:
    """``None`` (the default weights) or ``num_layers + 1`` non-negative weights."""
    if draw(st.booleans()):
        return None
    weight = st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False)
    return draw(st.lists(weight, min_size=num_layers + 1, max_size=num_layers + 1))


def float_arrays(shape, dtype: torch.dtype, bound: float = 2.0):
    """A numpy array strategy of finite floats in ``[-bound, bound]`` of ``dtype``'s width."""
    width = 32 if dtype == torch.float32 else 64
    np_dtype = np.float32 if width == 32 else np.float64
    elements = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=width)
    return hnp.arrays(np_dtype, shape, elements=elements)


# ---------------------------------------------------------------------------------------
# Dense float64 references, written from the definitions with no shared code under test.
# ---------------------------------------------------------------------------------------


def dense_adjacency(g: Graph) -> np.ndarray:
    """(N, N) binary adjacency [[0, R], [R^T, 0]] of the distinct interactions."""
    a = np.zeros((g.n, g.n), dtype=np.float64)
    for u, i in g.pairs():
        a[u, g.num_users + i] = 1.0
        a[g.num_users + i, u] = 1.0
    return a


def dense_normalized_adjacency(g: Graph) -> np.ndarray:
    """(N, N) float64 D^-1/2 A D^-1/2 with zero rows (not NaN) for isolated nodes."""
    a = dense_adjacency(g)
    deg = a.sum(1)
    inv = np.zeros_like(deg)
    inv[deg > 0] = 1.0 / np.sqrt(deg[deg > 0])
    return inv[:, None] * a * inv[None, :]


def dense_propagate(a_hat: np.ndarray, x: np.ndarray, alpha: list[float]) -> np.ndarray:
    """float64 sum_k alpha[k] A^k x."""
    out = np.zeros_like(x, dtype=np.float64)
    h = x.astype(np.float64)
    for k, a in enumerate(alpha):
        if k:
            h = a_hat @ h
        out += a * h
    return out


def csr_to_dense(adj: torch.Tensor) -> np.ndarray:
    """Densify a CSR tensor by walking crow/col/values (independent of torch's to_dense)."""
    crow = adj.crow_indices().cpu().numpy()
    col = adj.col_indices().cpu().numpy()
    val = adj.values().cpu().double().numpy()
    dense = np.zeros(tuple(adj.shape), dtype=np.float64)
    for r in range(adj.shape[0]):
        for p in range(crow[r], crow[r + 1]):
            dense[r, col[p]] += val[p]
    return dense
