r"""LightGCN propagation: :math:`\sum_k \alpha_k \hat A^k X_0` with a symmetric backward.

Two kernels compute one product :math:`\hat A X` from the same stored CSR tensor:

* ``"embedding_bag"``: ``F.embedding_bag(col, X, offsets=crow, per_sample_weights=values,
  mode="sum")``. Row ``r`` of :math:`\hat A X` is the weighted sum of the rows of ``X`` named
  by ``col[crow[r]:crow[r+1]]``, which is exactly a bag. On CPU this is several times faster
  than torch's CSR ``sparse.mm`` (see ``benchmarks/README.md``).
* ``"sparse_mm"``: ``torch.sparse.mm(adj, X)`` (MKL on CPU, cuSPARSE on CUDA).

``kernel="auto"`` picks the faster one measured on each device type (:data:`AUTO_KERNEL`).

A :class:`Graph` prepares an adjacency for repeated products: value copies in each
propagation dtype, on CPU the row blocks measured fastest for it (one call, or two calls on
halves of equal nnz; both give bit-identical results, so the choice never changes a result),
and an optional node order in which the products run (see
:func:`~lightgcn_sparse.adjacency.node_order`), invisible to callers.

Narrow rows: with ``dtype=torch.bfloat16`` (or ``float16``) each product gathers rows of
half the bytes; the embeddings, the layer sum and the gradient stay float32, only the
inputs and outputs of each product are rounded (float16 is scaled by the largest magnitude
first, so neither values nor gradients leave its range). The error bound is in
``tests/test_propagation.py``.

Because :math:`\hat A` is symmetric, the gradient of :math:`Y = \sum_k \alpha_k \hat A^k X`
with respect to ``X`` is :math:`\sum_k \alpha_k \hat A^k G` for the incoming gradient
``G``: the backward is the same propagation on the same stored structure, with no
transpose, no COO conversion and no second copy of the graph. Nothing but the graph is
saved for backward, so training and inference both hold ``O(N d)`` memory.

LightGCN++ (Lee et al., RecSys 2024, https://doi.org/10.1145/3640457.3688176) is the same
propagation with two options (``norm_left = norm_right = 1/2`` without ``layer_norm`` is
plain LightGCN and runs the code above, unchanged):

* the normalization :math:`D^{-a} A D^{-b}` (``a = norm_left``, ``b = norm_right``): entry
  ``(u, i)`` is :math:`d_u^{-a} d_i^{-b}`. It equals :math:`L S R` with the stored symmetric
  :math:`S = D^{-1/2} A D^{-1/2}` and the diagonal :math:`L = D^{1/2-a}`,
  :math:`R = D^{1/2-b}` (:meth:`Graph.scalings`), so one product is
  ``l * (S @ (r * x))`` and its transpose, the backward, is ``r * (S @ (l * g))``: the
  same stored graph, no transpose, no second copy;
* ``layer_norm``: each layer's input rows are L2-normalized before the product,
  :math:`E^{(k+1)} = L S R\, \mathrm{rownorm}(E^{(k)})`; :math:`E^{(0)}` enters the layer
  sum as it is.

The layer weights stay ``alpha``: LightGCN++'s :math:`\gamma E^{(0)} + (1-\gamma)\,
\mathrm{mean}_{k \ge 1} E^{(k)}` is ``alpha = (gamma, (1-gamma)/K, ..., (1-gamma)/K)``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import InvalidType, InvalidValue, check_float, check_int
from .adjacency import adjacency_degrees, check_adjacency, degree_scaling

KERNELS = ("embedding_bag", "sparse_mm")
#: Kernel used by ``kernel="auto"`` on each device type, chosen by measurement
#: (``python -m benchmarks.propagate``).
AUTO_KERNEL = {"cpu": "embedding_bag", "cuda": "sparse_mm"}
#: With several CPU threads, graphs above this many stored entries are timed once as one
#: call and as two calls on halves of equal nnz; the faster is kept (see :class:`Graph`).
SPLIT_MIN_NNZ = 1 << 20
#: Names accepted by ``propagation_dtype``.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: Range accepted for LightGCN++'s degree exponents ``norm_left`` and ``norm_right``.
NORM_RANGE = (-1.0, 1.0)

def resolve_kernel(kernel: str, device: torch.device) -> str:
    """Map ``"auto"`` to the measured default kernel of ``device``; validate other names."""
    if kernel == "auto":
        return AUTO_KERNEL.get(device.type, "sparse_mm")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be 'auto' or one of {KERNELS}. Got {kernel!r} instead.")
    return kernel


class Graph:
    """A symmetric CSR adjacency prepared for repeated products.

    Args:
        adj: (N, N) symmetric sparse CSR tensor (e.g. from :func:`normalized_adjacency`),
            already in the node order ``order`` describes.
        order: optional (N,) int64: ``order[k]`` is the node computed at position ``k``.
            :func:`propagate` maps inputs and outputs, so callers see the original order.
    """

    def __init__(self, adj: torch.Tensor, order: Optional[torch.Tensor] = None) -> None:
        self.adj = check_adjacency(adj)
        self.order = order
        self.inverse = None
        if order is not None:
            if order.shape != (adj.shape[0],):
                raise ValueError(f"order must have shape ({adj.shape[0]},). Got {order.shape}.")
            self.order = order.to(device=adj.device, dtype=torch.int64)
            self.inverse = torch.empty_like(self.order)
            self.inverse[self.order] = torch.arange(self.order.numel(), device=adj.device)
        self._csr = {adj.dtype: adj}  # the adjacency with values in each compute dtype
        self._split: dict[tuple, Optional[int]] = {}  # CPU: measured row split per setting
        self._scalings: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # LightGCN++
        self._local = threading.local()  # per-thread scratch buffers, reused call after call

    @classmethod
    def wrap(cls, adj: Union[Graph, torch.Tensor]) -> Graph:
        return adj if isinstance(adj, Graph) else cls(adj)

    @property
    def num_nodes(self) -> int:
        return self.adj.shape[0]

    @property
    def device(self) -> torch.device:
        return self.adj.device

    @property
    def dtype(self) -> torch.dtype:
        return self.adj.dtype

    def scratch(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A buffer private to this graph and thread, reused across calls (never returned
        to callers): fresh (N, d) allocations are page-faulted in anew on every call."""
        buffers = self._local.__dict__.setdefault("buffers", {})
        key = (name, tuple(shape), dtype)
        if key not in buffers:
            buffers[key] = torch.empty(shape, dtype=dtype, device=self.device)
        return buffers[key]

    def csr(self, dtype: torch.dtype) -> torch.Tensor:
        """The adjacency with its values in ``dtype`` (cached)."""
        if dtype not in self._csr:
            a = self.adj
            self._csr[dtype] = torch.sparse_csr_tensor(
                a.crow_indices(), a.col_indices(), a.values().to(dtype), size=a.shape,
                check_invariants=False,
            )  # fmt: skip
        return self._csr[dtype]

    def scalings(
        self, norm_left: float, norm_right: float, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""(N, 1) ``l`` and ``r`` with :math:`D^{-a} A D^{-b} = \mathrm{diag}(l)\, S\,
        \mathrm{diag}(r)`: :math:`l = d^{1/2-a}`, :math:`r = d^{1/2-b}` (cached).

        ``d`` is each row's stored entries (:func:`adjacency_degrees`), in the computing
        order; an isolated node gets 1 (:func:`degree_scaling`).
        """
        key = (float(norm_left), float(norm_right), dtype)
        if key not in self._scalings:
            deg = adjacency_degrees(self.adj)  # (N,)
            left = degree_scaling(deg, 0.5 - key[0], dtype)[:, None]  # (N, 1)
            right = degree_scaling(deg, 0.5 - key[1], dtype)[:, None]  # (N, 1)
            self._scalings[key] = (left, right)
        return self._scalings[key]

    def matmul(
        self, x: torch.Tensor, kernel: str = "auto", out: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """``adj @ x`` in ``x``'s dtype and node order (two-block results go into ``out``)."""
        kernel = resolve_kernel(kernel, x.device)
        adj = self.csr(x.dtype)
        if adj._nnz() == 0 or x.numel() == 0:  # embedding_bag rejects zero-width rows
            return torch.zeros_like(x)
        if kernel == "sparse_mm":
            return torch.sparse.mm(adj, x)
        crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
        mid = self._split_row(crow, x) if x.device.type == "cpu" else None
        if mid is None:
            return _bag(crow, col, val, x)
        # embedding_bag's CPU threads split rows evenly by count; the two blocks of a
        # bipartite graph have equal nnz but very different row degrees, so one call can
        # leave a thread idle. Two calls on halves of equal nnz compute the same sums.
        # (The `.out` overload of embedding_bag computes into a temporary and copies, so the
        # halves are concatenated instead.)
        lo = int(crow[mid])
        top = _bag(crow[: mid + 1], col[:lo], val[:lo], x)
        bottom = _bag(crow[mid:] - lo, col[lo:], val[lo:], x)
        return torch.cat([top, bottom], out=out) if out is not None else torch.cat([top, bottom])

    def _split_row(self, crow: torch.Tensor, x: torch.Tensor) -> Optional[int]:
        """The row to split at (two calls), or None (one call): timed once per setting.

        The choice is also kept on the adjacency tensor itself, so that another Graph of
        the same tensor reuses it: ``propagate(adj, ...)`` on a bare tensor wraps it in a
        new Graph on every call, and timing both kernels again made each such call several
        times slower than the products themselves (benchmarks/README.md).
        """
        threads = torch.get_num_threads()
        nnz = int(crow[-1])
        if threads < 2 or nnz < SPLIT_MIN_NNZ:
            return None
        key = (threads, x.dtype, x.shape[1])
        if key not in self._split:
            measured = self.adj.__dict__.setdefault("_lightgcn_split_row", {})
            if key in measured:
                self._split[key] = measured[key]
                return self._split[key]
            mid = int(torch.searchsorted(crow, torch.tensor(nnz // 2, dtype=crow.dtype)))
            if mid <= 0 or mid >= crow.numel() - 1:
                self._split[key] = None
            else:
                self._split[key] = None  # one call while timing it
                one = _median_time(lambda: self.matmul(x))
                self._split[key] = mid
                two = _median_time(lambda: self.matmul(x))
                self._split[key] = mid if two < one else None
            measured[key] = self._split[key]
        return self._split[key]


def _median_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _bag(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, x: torch.Tensor):
    """Rows ``crow``'s bags of ``x``: ``out[r] = sum_j val[j] x[col[j]]`` for j in row r."""
    return F.embedding_bag(
        col, x, crow, mode="sum", per_sample_weights=val, include_last_offset=True
    )


def spmm(
    adj: Union[Graph, torch.Tensor], x: torch.Tensor, kernel: str = "auto"
) -> torch.Tensor:
    """One sparse-dense product ``adj @ x`` with the chosen kernel (no autograd through it).

    Args:
        adj: (N, N) sparse CSR tensor or a :class:`Graph` (in its computing order).
        x: (N, d) dense tensor of the same device, any floating dtype.
        kernel: ``"auto"``, ``"embedding_bag"`` or ``"sparse_mm"``.

    Returns:
        (N, d) dense tensor.
    """
    return Graph.wrap(adj).matmul(x, kernel)


def _propagate_forward(
    graph: Graph, x: torch.Tensor, alpha: Sequence[float], kernel: str, dtype: torch.dtype
) -> torch.Tensor:
    """``sum_k alpha[k] adj^k x`` in ``x``'s dtype, each product computed in ``dtype``.

    Allocates only the returned (N, d) sum; products, casts and the node-order copy go to
    the graph's scratch buffers.
    """
    shape, wide = tuple(x.shape), x.dtype
    if graph.order is not None:
        x = torch.index_select(x, 0, graph.order, out=graph.scratch("in", shape, wide))
    out = x * alpha[0]  # (N, d)
    if len(alpha) > 1:
        scale = None
        h = x
        if dtype == torch.float16:  # keep values (and tiny gradients) inside float16's range
            scale = torch.linalg.vector_norm(x, float("inf")).clamp_min(torch.finfo(wide).tiny)
            h = torch.div(x, scale, out=graph.scratch("narrow", shape, dtype))
        elif dtype != wide:
            h = graph.scratch("narrow", shape, dtype).copy_(x)
        for k, a in enumerate(alpha[1:]):
            h = graph.matmul(h, kernel, out=graph.scratch(f"product{k % 2}", shape, dtype))
            src = h if h.dtype == wide else graph.scratch("widened", shape, wide).copy_(h)
            if scale is None:
                out.add_(src, alpha=a)
            else:
                out.addcmul_(src, scale, value=a)
    if graph.order is not None:
        out = out.index_select(0, graph.inverse)
    return out


class _SymmetricPropagate(torch.autograd.Function):
    """``Y = sum_k alpha_k A^k X`` whose backward uses ``A^T = A``."""

    @staticmethod
    def forward(ctx, x, graph, alpha, kernel, dtype):  # type: ignore[override]
        ctx.graph, ctx.alpha, ctx.kernel, ctx.dtype = graph, alpha, kernel, dtype
        return _propagate_forward(graph, x, alpha, kernel, dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        grad = _propagate_forward(
            ctx.graph, grad_out.contiguous(), ctx.alpha, ctx.kernel, ctx.dtype
        )
        return grad, None, None, None, None


def _scaled_matmul(
    graph: Graph,
    x: torch.Tensor,
    left: torch.Tensor,
    right: torch.Tensor,
    kernel: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``left * (S @ (right * x))`` in ``x``'s dtype, the product's rows in ``dtype``."""
    h = right * x  # (N, d)
    if dtype == torch.float16:  # keep values (and tiny gradients) inside float16's range
        scale = torch.linalg.vector_norm(h, float("inf")).clamp_min(torch.finfo(h.dtype).tiny)
        out = graph.matmul((h / scale).to(dtype), kernel).to(x.dtype)
        return out.mul_(left * scale)
    return graph.matmul(h.to(dtype), kernel).to(x.dtype).mul_(left)  # a new tensor


class _ScaledProduct(torch.autograd.Function):
    """``Y = l * (S X')`` with ``X' = r * X``, whose backward ``r * (S (l * G))`` uses
    ``S^T = S``. Saves nothing but the graph and the two (N, 1) scalings."""

    @staticmethod
    def forward(ctx, x, graph, left, right, kernel, dtype):  # type: ignore[override]
        ctx.graph, ctx.left, ctx.right, ctx.kernel, ctx.dtype = graph, left, right, kernel, dtype
        return _scaled_matmul(graph, x, left, right, kernel, dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        grad = _scaled_matmul(
            ctx.graph, grad_out.contiguous(), ctx.right, ctx.left, ctx.kernel, ctx.dtype
        )
        return grad, None, None, None, None, None


def _scaled_propagate(
    graph: Graph,
    x: torch.Tensor,
    alpha: Sequence[float],
    kernel: str,
    dtype: torch.dtype,
    norms: tuple[float, float],
    layer_norm: bool,
) -> torch.Tensor:
    """LightGCN++: ``sum_k alpha[k] E_k`` with ``E_{k+1} = L S R rownorm(E_k)``.

    Autograd differentiates the row normalization and the layer sum around
    :class:`_ScaledProduct`. Without ``layer_norm`` nothing of size (N, d) is kept for
    backward (the sum and the products save no activations); with it, each
    ``F.normalize`` keeps its input and row norms: up to K (N, d) activations.
    """
    left, right = graph.scalings(norms[0], norms[1], x.dtype)
    if graph.order is not None:
        x = x.index_select(0, graph.order)
    out = x * alpha[0]  # (N, d)
    h = x
    for a in alpha[1:]:
        if layer_norm:
            h = F.normalize(h, dim=1)  # rows / max(||row||, 1e-12): a zero row stays zero
        h = _ScaledProduct.apply(h, graph, left, right, kernel, dtype)  # (N, d)
        out = out + a * h
    if graph.order is not None:
        out = out.index_select(0, graph.inverse)
    return out


def check_norms(norm_left: Any, norm_right: Any, layer_norm: Any) -> tuple[float, float, bool]:
    """Validate LightGCN++'s options; return them as ``(float, float, bool)``."""
    low, high = NORM_RANGE
    left = check_float("norm_left", norm_left, low=low, high=high)
    right = check_float("norm_right", norm_right, low=low, high=high)
    if not isinstance(layer_norm, (bool, np.bool_)):
        raise InvalidType("layer_norm", f"layer_norm must be a bool. Got {layer_norm!r} instead.")
    return left, right, bool(layer_norm)


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
        raise InvalidType(
            "alpha",
            f"alpha must be a sequence of num_layers + 1 = {num_layers + 1} weights or None. "
            f"Got the scalar {alpha!r}.",
        )
    alpha = list(alpha)
    if len(alpha) != num_layers + 1:
        raise InvalidValue(
            "alpha",
            f"alpha must have num_layers + 1 = {num_layers + 1} entries. "
            f"Got {len(alpha)}: {alpha!r}.",
        )
    return [check_float(f"alpha[{k}]", a, low=0.0) for k, a in enumerate(alpha)]


def propagate(
    adj: Union[Graph, torch.Tensor],
    x0: torch.Tensor,
    num_layers: int,
    alpha: Union[None, Sequence[float], torch.Tensor] = None,
    *,
    kernel: str = "auto",
    dtype: Optional[torch.dtype] = None,
    norm_left: float = 0.5,
    norm_right: float = 0.5,
    layer_norm: bool = False,
) -> torch.Tensor:
    r"""LightGCN propagation :math:`Y = \sum_{k=0}^{K} \alpha_k \hat A^k X_0`.

    Differentiable with respect to ``x0`` through a custom autograd function whose backward
    is the same propagation applied to the incoming gradient (valid because ``adj`` is
    symmetric, as :func:`normalized_adjacency` builds it). Gradients with respect to the
    values of ``adj`` or to ``alpha`` are not computed.

    Args:
        adj: (N, N) symmetric sparse CSR tensor, e.g. from :func:`normalized_adjacency`, or a
            :class:`Graph` prepared from one (faster when called repeatedly).
        x0: (N, d) dense layer-0 embeddings, same dtype and device as ``adj``.
        num_layers: K >= 0, the number of propagation rounds.
        alpha: K + 1 non-negative layer weights; default ``1 / (K + 1)`` each.
        kernel: ``"auto"`` (default), ``"embedding_bag"`` or ``"sparse_mm"``.
        dtype: the dtype of each product's rows (default ``x0.dtype``); ``torch.bfloat16``
            or ``torch.float16`` halve the bytes gathered, the result stays ``x0.dtype``.
        norm_left, norm_right: LightGCN++'s exponents ``a``, ``b`` in [-1, 1] of
            :math:`D^{-a} A D^{-b}`, applied to ``adj`` as :math:`D^{1/2-a}\, \hat A\,
            D^{1/2-b}` (so ``adj`` must be :math:`D^{-1/2} A D^{-1/2}`; ``D`` is read from its
            rows' stored entries). Default 1/2 each: :math:`\hat A` itself.
        layer_norm: LightGCN++'s L2 normalization of each layer's input rows,
            :math:`E^{(k+1)} = D^{-a} A D^{-b}\, \mathrm{rownorm}(E^{(k)})`. With it, the
            propagation is not linear and autograd keeps up to K (N, d) activations.

    With ``norm_left = norm_right = 1/2`` and no ``layer_norm`` this is plain LightGCN,
    computed by the code path above, bit for bit as without these arguments.

    Returns:
        (N, d) tensor of final embeddings.
    """
    graph = Graph.wrap(adj)
    weights = layer_weights(num_layers, alpha)
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"x0 must be a torch.Tensor. Got {type(x0).__name__}.")
    if x0.dim() != 2 or x0.shape[0] != graph.num_nodes:
        raise ValueError(
            f"x0 must have shape (N, d) with N = {graph.num_nodes}. "
            f"Got {tuple(x0.shape)} instead."
        )
    if x0.dtype != graph.dtype:
        raise TypeError(f"x0 has dtype {x0.dtype} but adj has {graph.dtype}; they must match.")
    if x0.device != graph.device:
        raise ValueError(f"x0 is on {x0.device} but adj is on {graph.device}; they must match.")
    if dtype is None:
        dtype = x0.dtype
    elif not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype or None. Got {dtype!r}.")
    kernel = resolve_kernel(kernel, x0.device)
    x0 = x0.contiguous()
    norms = check_norms(norm_left, norm_right, layer_norm)
    if norms != (0.5, 0.5, False):  # LightGCN++
        return _scaled_propagate(graph, x0, weights, kernel, dtype, norms[:2], norms[2])
    if torch.is_grad_enabled() and x0.requires_grad:
        return _SymmetricPropagate.apply(x0, graph, weights, kernel, dtype)
    with torch.no_grad():
        return _propagate_forward(graph, x0, weights, kernel, dtype)


def check_symmetric(adj: torch.Tensor, atol: Optional[float] = None) -> bool:
    """True when ``adj`` equals its transpose (a debugging aid, O(nnz) memory)."""
    adj = check_adjacency(adj)
    coo = adj.to_sparse_coo().coalesce()
    diff = (coo - coo.t()).coalesce().values()
    tol = atol if atol is not None else 10 * torch.finfo(adj.dtype).eps
    return bool(diff.abs().max() <= tol) if diff.numel() else True
