"""The symmetric normalized adjacency of a user-item bipartite graph, as a CSR tensor."""

from __future__ import annotations

import warnings
from typing import Optional, Union

import torch

from ._checks import ArrayLike, check_int
from .user_items import user_items_from_pairs

INT32_MAX = 2**31 - 1


def normalized_adjacency(
    users: ArrayLike,
    items: ArrayLike,
    num_users: int,
    num_items: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: Union[str, torch.device, None] = None,
    index_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    r"""Build :math:`\hat A = D^{-1/2} A D^{-1/2}` of the bipartite graph as sparse CSR.

    .. math::
        A = \begin{pmatrix} 0 & R \\ R^\top & 0 \end{pmatrix}, \qquad
        \hat A_{u,\,U+i} = \hat A_{U+i,\,u} = \frac{1}{\sqrt{|N_u|}\sqrt{|N_i|}}

    where :math:`R` is the binary users x items interaction matrix. Node ``u`` is user ``u``
    and node ``num_users + i`` is item ``i`` (users first). Duplicate ``(user, item)`` pairs
    count once. Isolated users and items get empty rows (no NaN, no inf).

    Cost: one sort of the ``E`` edge keys per block, ``O(E log E)`` time and ``O(E)`` memory;
    nothing dense of size ``N x N`` is ever formed.

    Args:
        users: (E,) integer user ids in ``[0, num_users)``.
        items: (E,) integer item ids in ``[0, num_items)``.
        num_users: number of users ``U`` (>= 0).
        num_items: number of items ``I`` (>= 0).
        dtype: floating dtype of the values (default float32).
        device: where to build and keep the tensor (default CPU).
        index_dtype: ``torch.int32`` or ``torch.int64`` for crow/col indices. Default
            (None): int32 when both ``N = U + I`` and ``nnz = 2 * unique edges`` fit below
            2**31, which halves index memory and is what the kernels prefer; int64 otherwise.

    Returns:
        (N, N) ``torch.sparse_csr_tensor`` with ``N = U + I``, columns sorted within rows.
    """
    num_users = check_int("num_users", num_users)
    num_items = check_int("num_items", num_items)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype. Got {dtype!r} instead.")
    if index_dtype not in (None, torch.int32, torch.int64):
        raise TypeError(f"index_dtype must be torch.int32, torch.int64 or None. Got {index_dtype}")
    if num_users * num_items >= 2**63:
        raise ValueError(f"num_users * num_items = {num_users * num_items} overflows int64 keys.")
    # Deduplicated and sorted user-major: one unique over the keys u * I + i.
    ui = user_items_from_pairs(users, items, num_users, num_items, device)
    dev, n = ui.device, num_users + num_items
    u, i = ui.row_ids(), ui.indices  # (E,) each
    deg_u = ui.degrees()  # (U,)
    deg_i = torch.bincount(i, minlength=num_items)  # (I,)
    inv_sqrt_u = deg_u.to(dtype).clamp_min(1).rsqrt()
    inv_sqrt_i = deg_i.to(dtype).clamp_min(1).rsqrt()
    w = inv_sqrt_u[u] * inv_sqrt_i[i]  # (E,) 1/sqrt(d_u d_i), never inf: both degrees >= 1

    # Item block rows: the same edges sorted item-major (stable sort keeps users ascending).
    order = torch.argsort(i, stable=True)
    col = torch.cat([i + num_users, u[order]])  # (2E,)
    val = torch.cat([w, w[order]])  # (2E,)
    deg = torch.cat([deg_u, deg_i])  # (N,)
    crow = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    torch.cumsum(deg, 0, out=crow[1:])

    nnz = col.numel()
    if index_dtype is None:
        index_dtype = torch.int32 if max(n, nnz) <= INT32_MAX else torch.int64
    elif index_dtype == torch.int32 and max(n, nnz) > INT32_MAX:
        raise ValueError(f"index_dtype int32 cannot hold N={n}, nnz={nnz}; use torch.int64.")
    with warnings.catch_warnings():  # torch warns that CSR support is "beta" on every build
        warnings.simplefilter("ignore", UserWarning)
        adj = torch.sparse_csr_tensor(
            crow.to(index_dtype),
            col.to(index_dtype),
            val,
            size=(n, n),
            dtype=dtype,
            device=dev,
            check_invariants=False,  # built sorted and in range by construction
        )
    return _mark_symmetric(adj)  # both blocks hold the same w, by construction


def check_adjacency(adj: torch.Tensor, name: str = "adj") -> torch.Tensor:
    """Check that ``adj`` is a square 2-D sparse CSR tensor and return it."""
    if not isinstance(adj, torch.Tensor) or adj.layout != torch.sparse_csr:
        layout = getattr(adj, "layout", type(adj).__name__)
        raise TypeError(
            f"{name} must be a torch.sparse_csr_tensor (see normalized_adjacency). Got {layout}."
        )
    if adj.dim() != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"{name} must be square 2-D. Got shape {tuple(adj.shape)} instead.")
    return adj


#: Node orders that :func:`node_order` computes.
NODE_ORDERS = ("none", "degree", "rcm", "balanced")


def node_order(adj: torch.Tensor, method: str = "none", parts: int = 2) -> Optional[torch.Tensor]:
    """A node order for computing products with ``adj``, or ``None`` to keep the built one.

    * ``"degree"``: by degree, highest first (hubs share cache lines).
    * ``"rcm"``: reverse Cuthill-McKee (``scipy.sparse.csgraph``), a bandwidth-reducing order:
      neighbours get nearby ids, so the rows gathered for one row are close in memory.
    * ``"balanced"``: nodes dealt by degree over ``parts`` contiguous ranges of equal node
      count (each keeping the built order inside), so that threads splitting the rows by
      count get the same number of entries, whatever the hubs.

    Returns:
        (N,) int64 tensor on ``adj``'s device: ``order[k]`` is the node put at position ``k``.
    """
    adj = check_adjacency(adj)
    if method not in NODE_ORDERS:
        raise ValueError(f"node_order must be one of {NODE_ORDERS}. Got {method!r}.")
    if method == "none":
        return None
    crow = adj.crow_indices().to(device="cpu", dtype=torch.int64)
    n = adj.shape[0]
    deg = crow[1:] - crow[:-1]  # (N,)
    if n == 0:  # nothing to order (scipy's reverse_cuthill_mckee fails on 0 nodes)
        order = torch.empty(0, dtype=torch.int64)
    elif method == "degree":
        order = torch.argsort(-deg, stable=True)
    elif method == "balanced":
        parts = check_int("parts", parts, low=1)
        rank = torch.empty(n, dtype=torch.int64)
        rank[torch.argsort(-deg, stable=True)] = torch.arange(n)
        part = rank % parts  # the i-th heaviest node goes to part i mod parts
        order = torch.argsort(part * n + torch.arange(n), stable=True)
    else:
        import numpy as np
        import scipy.sparse as sp
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        col = adj.col_indices().to(device="cpu", dtype=torch.int64).numpy()
        ones = np.ones(col.size, dtype=np.int8)
        pattern = sp.csr_matrix((ones, col, crow.numpy()), shape=(n, n))
        rcm = reverse_cuthill_mckee(pattern, symmetric_mode=True)
        order = torch.from_numpy(rcm.astype(np.int64))
    return order.to(adj.device)


def permute_adjacency(adj: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``P adj P^T`` for the permutation ``order`` (row/column ``k`` is node ``order[k]``)."""
    adj = check_adjacency(adj)
    n, dev = adj.shape[0], adj.device
    order = order.to(device=dev, dtype=torch.int64)
    position = torch.empty_like(order)
    position[order] = torch.arange(n, device=dev)  # node -> its new row
    crow = adj.crow_indices().to(torch.int64)
    rows = torch.repeat_interleave(torch.arange(n, device=dev), crow[1:] - crow[:-1])
    new_row = position[rows]
    new_col = position[adj.col_indices().to(torch.int64)]
    perm = torch.argsort(new_row * n + new_col)
    counts = torch.bincount(new_row, minlength=n)
    new_crow = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    torch.cumsum(counts, 0, out=new_crow[1:])
    index_dtype = adj.crow_indices().dtype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        permuted = torch.sparse_csr_tensor(
            new_crow.to(index_dtype),
            new_col[perm].to(index_dtype),
            adj.values()[perm],
            size=adj.shape,
            check_invariants=False,
        )
    return _mark_symmetric(permuted) if adj.__dict__.get(_SYMMETRIC) else permuted


#: Set on an adjacency tensor known to be symmetric (built so, or checked once).
_SYMMETRIC = "_lightgcn_symmetric"


def _mark_symmetric(adj: torch.Tensor) -> torch.Tensor:
    adj.__dict__[_SYMMETRIC] = True
    return adj


def require_symmetric(adj: torch.Tensor, name: str = "adj") -> None:
    """Raise ``ValueError`` unless ``adj`` (a square CSR tensor) equals its transpose, up to
    rounding: the propagation's backward applies ``adj`` itself as its transpose, so a
    non-symmetric one would give wrong gradients. Checked once per tensor (O(nnz log nnz));
    :func:`normalized_adjacency` and :func:`permute_adjacency` build theirs known symmetric.
    """
    if adj.__dict__.get(_SYMMETRIC):
        return
    if not is_symmetric(adj):
        raise ValueError(
            f"{name} must be symmetric (the propagation's backward uses {name} as its own "
            "transpose; normalized_adjacency builds it so). This one is not."
        )
    _mark_symmetric(adj)


def is_symmetric(adj: torch.Tensor, atol: Optional[float] = None) -> bool:
    """Whether the square CSR ``adj`` equals its transpose: the same non-zero positions, and
    values within ``atol`` (default 10 eps of the largest magnitude, 10 eps relative)."""
    adj = check_adjacency(adj)
    n = adj.shape[0]
    crow, col = adj.crow_indices().to(torch.int64), adj.col_indices().to(torch.int64)
    row = torch.repeat_interleave(torch.arange(n, device=adj.device), crow[1:] - crow[:-1])
    val = adj.values()
    stored = val != 0  # an explicit zero without its mirror is still symmetric
    row, col, val = row[stored], col[stored], val[stored]
    by_row, by_col = torch.argsort(row * n + col), torch.argsort(col * n + row)
    same = torch.equal(row[by_row], col[by_col]) and torch.equal(col[by_row], row[by_col])
    if same and val.numel():
        eps = 10 * torch.finfo(val.dtype).eps if val.is_floating_point() else 0.0
        atol = eps * float(val.abs().max()) if atol is None else atol
        same = torch.allclose(val[by_row], val[by_col], rtol=eps, atol=atol)
    return bool(same)


def adjacency_degrees(adj: torch.Tensor) -> torch.Tensor:
    """(N,) int64 stored entries of each row of ``adj``, in its row order.

    For a graph from :func:`normalized_adjacency` this is each node's training degree
    (:math:`|N_u|` of user ``u``, :math:`|N_i|` of item ``i``): duplicates were counted once.
    """
    crow = check_adjacency(adj).crow_indices().to(torch.int64)
    return crow[1:] - crow[:-1]


def degree_scaling(
    degrees: torch.Tensor, exponent: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    r"""(N,) :math:`d^{\,e}` of each degree ``d`` (computed in float64, returned in ``dtype``).

    With the stored :math:`S = D^{-1/2} A D^{-1/2}`, LightGCN++'s
    :math:`D^{-a} A D^{-b} = D^{1/2-a}\, S\, D^{1/2-b}`: the scalings are this function with
    exponents ``1/2 - a`` and ``1/2 - b``. An isolated node (``d = 0``) gets 1: its row and
    column of ``S`` are empty, so the value never enters a product, and 1 stays finite for
    every exponent (``0 ** e`` is ``inf`` for ``e < 0``).
    """
    d = degrees.to(torch.float64)
    return torch.where(d > 0, d, torch.ones_like(d)).pow(exponent).to(dtype)
