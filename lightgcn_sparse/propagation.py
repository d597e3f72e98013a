r"""LightGCN propagation: :math:`\sum_k \alpha_k \hat A^k X_0` with a symmetric backward.

Two kernels compute one product :math:`\hat A X` from the same stored CSR tensor:

* ``"embedding_bag"``: ``F.embedding_bag(col, X, offsets=crow, per_sample_weights=values,
  mode="sum")``. Row ``r`` of :math:`\hat A X` is the weighted sum of the rows of ``X`` named
  by ``col[crow[r]:crow[r+1]]``, which is exactly a bag. On CPU this is several times faster
  than torch's CSR ``sparse.mm`` (see ``benchmarks/README.md``).
* ``"sparse_mm"``: ``torch.sparse.mm(adj, X)`` (MKL on CPU, cuSPARSE on CUDA).

``kernel="auto"`` picks the faster one measured on each device type (:data:`AUTO_KERNEL`).

Because :math:`\hat A` is symmetric, the gradient of :math:`Y = \sum_k \alpha_k \hat A^k X`
with respect to ``X`` is :math:`\sum_k \alpha_k \hat A^k G` for the incoming gradient
``G``: the backward is the same propagation on the same stored structure, with no
transpose, no COO conversion and no second copy of the graph. Nothing but the graph is
saved for backward, so training and inference both hold ``O(N d)`` memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn.functional as F

from ._checks import check_float, check_int
from .adjacency import check_adjacency

KERNELS = ("embedding_bag", "sparse_mm")
#: Kernel used by ``kernel="auto"`` on each device type, chosen by measurement
#: (``python -m benchmarks.propagate``).
AUTO_KERNEL = {"cpu": "embedding_bag", "cuda": "sparse_mm"}
#: With several CPU threads, graphs above this many stored entries are multiplied in two
#: row blocks of equal nnz (see :func:`spmm`).
SPLIT_MIN_NNZ = 1 << 20


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """Map ``"auto"`` to the measured default kernel of ``device``; validate other names."""
    if kernel == "auto":
        return AUTO_KERNEL.get(device.type, "sparse_mm")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be 'auto' or one of {KERNELS}. Got {kernel!r} instead.")
    return kernel


def spmm(adj: torch.Tensor, x: torch.Tensor, kernel: str = "auto") -> torch.Tensor:
    """One sparse-dense product ``adj @ x`` with the chosen kernel (no autograd through it).

    Args:
        adj: (N, N) sparse CSR tensor.
        x: (N, d) dense tensor of the same dtype and device.
        kernel: ``"auto"``, ``"embedding_bag"`` or ``"sparse_mm"``.

    Returns:
        (N, d) dense tensor.
    """
    kernel = resolve_kernel(kernel, x.device)
    if adj._nnz() == 0 or x.numel() == 0:  # embedding_bag rejects zero-width rows
        return torch.zeros_like(x)
    if kernel == "sparse_mm":
        return torch.sparse.mm(adj, x)
    crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
    nnz = col.numel()
    if x.device.type != "cpu" or nnz < SPLIT_MIN_NNZ or torch.get_num_threads() < 2:
        return _bag(crow, col, val, x)
    # embedding_bag's CPU threads split rows evenly by count; the two blocks of a bipartite
    # graph have equal nnz but very different row degrees, so one call leaves a thread idle.
    # Two calls on the equal-nnz halves (for normalized_adjacency: users, then items) keep
    # both busy (about 1.25x at 2 threads on 5M edges, measured in benchmarks/README.md).
    mid = int(torch.searchsorted(crow, torch.tensor(nnz // 2, dtype=crow.dtype)))
    if mid <= 0 or mid >= crow.numel() - 1:
        return _bag(crow, col, val, x)
    lo = int(crow[mid])
    top = _bag(crow[: mid + 1], col[:lo], val[:lo], x)
    bottom = _bag(crow[mid:] - lo, col[lo:], val[lo:], x)
    return torch.cat([top, bottom])


def _bag(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, x: torch.Tensor):
    """Rows ``crow``'s bags of ``x``: ``out[r] = sum_j val[j] x[col[j]]`` for j in row r."""
    return F.embedding_bag(
        col, x, crow, mode="sum", per_sample_weights=val, include_last_offset=True
    )


def _propagate_forward(
    adj: torch.Tensor, x: torch.Tensor, alpha: Sequence[float], kernel: str
) -> torch.Tensor:
    """Accumulate ``sum_k alpha[k] adj^k x`` holding three (N, d) buffers at most."""
    out = x * alpha[0]  # (N, d)
    h = x
    for a in alpha[1:]:
        h = spmm(adj, h, kernel)  # (N, d)
        out.add_(h, alpha=a)
    return out


class _SymmetricPropagate(torch.autograd.Function):
    """``Y = sum_k alpha_k A^k X`` whose backward uses ``A^T = A``."""

    @staticmethod
    def forward(ctx, x, adj, alpha, kernel):  # type: ignore[override]
        ctx.adj, ctx.alpha, ctx.kernel = adj, alpha, kernel
        return _propagate_forward(adj, x, alpha, kernel)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        grad = _propagate_forward(ctx.adj, grad_out.contiguous(), ctx.alpha, ctx.kernel)
        return grad, None, None, None


def layer_weights(num_layers: int, alpha: Union[None, float, Sequence[float], torch.Tensor]):
    """Validate ``alpha`` and return it as a list of ``num_layers + 1`` floats.

    ``None`` means the LightGCN default ``alpha_k = 1 / (K + 1)``.
    """
    num_layers = check_int("num_layers", num_layers)
    if alpha is None:
        return [1.0 / (num_layers + 1)] * (num_layers + 1)
    if isinstance(alpha, torch.Tensor):
        alpha = alpha.detach().cpu().reshape(-1).tolist()
    elif isinstance(alpha, (int, float)):
        raise TypeError(
            f"alpha must be a sequence of num_layers + 1 = {num_layers + 1} weights or None. "
            f"Got the scalar {alpha!r}."
        )
    alpha = list(alpha)
    if len(alpha) != num_layers + 1:
        raise ValueError(
            f"alpha must have num_layers + 1 = {num_layers + 1} entries. "
            f"Got {len(alpha)}: {alpha!r}."
        )
    return [check_float(f"alpha[{k}]", a, low=0.0) for k, a in enumerate(alpha)]


def propagate(
    adj: torch.Tensor,
    x0: torch.Tensor,
    num_layers: int,
    alpha: Union[None, Sequence[float], torch.Tensor] = None,
    *,
    kernel: str = "auto",
) -> torch.Tensor:
    r"""LightGCN propagation :math:`Y = \sum_{k=0}^{K} \alpha_k \hat A^k X_0`.

    Differentiable with respect to ``x0`` through a custom autograd function whose backward
    is the same propagation applied to the incoming gradient (valid because ``adj`` is
    symmetric, as :func:`normalized_adjacency` builds it). Gradients with respect to the
    values of ``adj`` or to ``alpha`` are not computed.

    Args:
        adj: (N, N) symmetric sparse CSR tensor, e.g. from :func:`normalized_adjacency`.
        x0: (N, d) dense layer-0 embeddings, same dtype and device as ``adj``.
        num_layers: K >= 0, the number of propagation rounds.
        alpha: K + 1 non-negative layer weights; default ``1 / (K + 1)`` each.
        kernel: ``"auto"`` (default), ``"embedding_bag"`` or ``"sparse_mm"``.

    Returns:
        (N, d) tensor of final embeddings.
    """
    adj = check_adjacency(adj)
    weights = layer_weights(num_layers, alpha)
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"x0 must be a torch.Tensor. Got {type(x0).__name__}.")
    if x0.dim() != 2 or x0.shape[0] != adj.shape[0]:
        raise ValueError(
            f"x0 must have shape (N, d) with N = {adj.shape[0]}. Got {tuple(x0.shape)} instead."
        )
    if x0.dtype != adj.dtype:
        raise TypeError(f"x0 has dtype {x0.dtype} but adj has {adj.dtype}; they must match.")
    if x0.device != adj.device:
        raise ValueError(f"x0 is on {x0.device} but adj is on {adj.device}; they must match.")
    kernel = resolve_kernel(kernel, x0.device)
    x0 = x0.contiguous()
    if torch.is_grad_enabled() and x0.requires_grad:
        return _SymmetricPropagate.apply(x0, adj, weights, kernel)
    with torch.no_grad():
        return _propagate_forward(adj, x0, weights, kernel)


def check_symmetric(adj: torch.Tensor, atol: Optional[float] = None) -> bool:
    """True when ``adj`` equals its transpose (a debugging aid, O(nnz) memory)."""
    adj = check_adjacency(adj)
    coo = adj.to_sparse_coo().coalesce()
    diff = (coo - coo.t()).coalesce().values()
    tol = atol if atol is not None else 10 * torch.finfo(adj.dtype).eps
    return bool(diff.abs().max() <= tol) if diff.numel() else True
