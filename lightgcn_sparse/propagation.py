r"""LightGCN propagation: :math:`\sum_k \alpha_k \hat A^k X_0` with a symmetric backward.

Products run on a :class:`~lightgcn_sparse.graph.Graph` (kernels, value copies, the CPU row
split, node order: see :mod:`lightgcn_sparse.graph`); a bare CSR tensor is wrapped in one.

Narrow rows: with ``dtype=torch.bfloat16`` (or ``float16``) each product gathers rows of
half the bytes; the embeddings, the layer sum and the gradient stay float32, only the
inputs and outputs of each product are rounded (float16 is scaled by the largest magnitude
first, so neither values nor gradients leave its range). The error bound is in
``tests/test_propagation_dtype.py``.

Because :math:`\hat A` is symmetric, the gradient of :math:`Y = \sum_k \alpha_k \hat A^k X`
with respect to ``X`` is :math:`\sum_k \alpha_k \hat A^k G` for the incoming gradient
``G``: the backward is the same propagation on the same stored structure, with no
transpose, no COO conversion and no second copy of the graph. Nothing but the graph is
saved for backward, so training and inference both hold ``O(N d)`` memory.

A training step needs the final embeddings of its batch's rows only:
:func:`propagate_rows` computes the last layer and the layer sum at those rows (layers
1..K-1 still feed the next product in full), and its backward, whose incoming gradient
lives on those rows, runs Horner's rule :math:`A(\alpha_1 G + A(\alpha_2 G + \dots))`:
the terms added between products are R rows, so the only (N, d) work is the K products.
CPU steps use it when a batch's rows are at most half the nodes (Gowalla, batch
2048: an epoch 14-16 % faster in float32, 22-24 % in bfloat16; ``LightGCN._batch_rows_only``
and benchmarks/README.md).

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

from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import InvalidType, InvalidValue, check_float, check_int
from .adjacency import is_symmetric, require_symmetric
from .graph import (  # noqa: F401 - re-exported: propagation's public names since 0.1
    AUTO_KERNEL,
    DTYPES,
    KERNELS,
    SPLIT_MIN_NNZ,
    Graph,
    resolve_kernel,
    spmm,
)

#: Range accepted for LightGCN++'s degree exponents ``norm_left`` and ``norm_right``.
NORM_RANGE = (-1.0, 1.0)


def _range_scale(x: torch.Tensor) -> torch.Tensor:
    """float16's scale: the largest magnitude of ``x`` (at least the smallest normal of its
    dtype), so that ``x / scale`` and tiny gradients stay inside float16's range."""
    return torch.linalg.vector_norm(x, float("inf")).clamp_min(torch.finfo(x.dtype).tiny)


def _narrow(
    graph: Graph, x: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``x`` as the first product's input rows in ``dtype`` (a scratch buffer, or ``x``
    itself when the dtype is its own), and the scale it was divided by (float16 only:
    the largest magnitude, so neither values nor tiny gradients leave its range)."""
    if dtype == x.dtype:
        return x, None
    out = graph.scratch("narrow", tuple(x.shape), dtype)
    if dtype == torch.float16:
        scale = _range_scale(x)
        return torch.div(x, scale, out=out), scale
    return out.copy_(x), None


def _accumulate(
    graph: Graph, out: torch.Tensor, h: torch.Tensor, a: float, scale: Optional[torch.Tensor]
) -> None:
    """``out += a * scale * h`` in ``out``'s dtype (``h`` widened exactly first: one
    copy and a same-dtype add take half the time of a mixed-dtype add on CPU)."""
    if h.dtype != out.dtype:
        h = graph.scratch("widened", tuple(h.shape), out.dtype).copy_(h)
    if scale is None:
        out.add_(h, alpha=a)
    else:
        out.addcmul_(h, scale, value=a)


def _propagate_forward(
    graph: Graph, x: torch.Tensor, alpha: Sequence[float], kernel: str, dtype: torch.dtype
) -> torch.Tensor:
    """``sum_k alpha[k] adj^k x`` in ``x``'s dtype, each product computed in ``dtype``.

    Allocates only the returned (N, d) sum; products, casts and the node-order copy go to
    the graph's scratch buffers.
    """
    shape = tuple(x.shape)
    if graph.order is not None:
        x = torch.index_select(x, 0, graph.order, out=graph.scratch("in", shape, x.dtype))
    out = x * alpha[0]  # (N, d)
    if len(alpha) > 1:
        h, scale = _narrow(graph, x, dtype)
        for k, a in enumerate(alpha[1:]):
            h = graph.matmul(h, kernel, out=graph.scratch(f"product{k % 2}", shape, dtype))
            _accumulate(graph, out, h, a, scale)
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


def _rows_forward(
    graph: Graph,
    x: torch.Tensor,
    rows: torch.Tensor,
    alpha: Sequence[float],
    kernel: str,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(R, d) ``sum_k alpha[k] (adj^k x)[rows]``, (R, d) ``x[rows]`` and the rows' (R,)
    positions in the computing order; layers 1..K-1 in full, the last at ``rows`` only."""
    shape = tuple(x.shape)
    at = rows if graph.order is None else graph.inverse[rows]  # computing positions
    x_rows = x.index_select(0, rows)  # (R, d)
    out = x_rows * alpha[0]
    if len(alpha) > 1:
        if graph.order is not None:
            x = torch.index_select(x, 0, graph.order, out=graph.scratch("in", shape, x.dtype))
        h, scale = _narrow(graph, x, dtype)
        for k, a in enumerate(alpha[1:-1]):
            h = graph.matmul(h, kernel, out=graph.scratch(f"product{k % 2}", shape, dtype))
            _accumulate(graph, out, h.index_select(0, at), a, scale)
        _accumulate(graph, out, graph.rows_matmul(h, at, kernel), alpha[-1], scale)
    return out, x_rows, at


class _PropagateRows(torch.autograd.Function):
    """``(Y[rows], X[rows])`` of ``Y = sum_k alpha_k A^k X`` for unique ``rows``.

    Forward: layers 1..K-1 in full (they feed the next product), the last layer only at
    ``rows`` (:meth:`Graph.rows_matmul`), the layer sum only at ``rows``. Backward: the
    incoming gradients live on ``rows`` only, so the gradient of ``X`` is
    ``sum_k alpha_k A^k G`` with ``G`` zero elsewhere (``A^T = A``), plus the layer-0
    rows' own gradient: one (N, d) tensor, no dense (N, d) gradient of ``Y`` at all.
    """

    @staticmethod
    def forward(ctx, x, rows, graph, alpha, kernel, dtype):  # type: ignore[override]
        ctx.graph, ctx.alpha, ctx.kernel, ctx.dtype = graph, alpha, kernel, dtype
        out, x_rows, at = _rows_forward(graph, x, rows, alpha, kernel, dtype)
        ctx.save_for_backward(at)
        return out, x_rows

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, grad_rows):  # type: ignore[override]
        (at,) = ctx.saved_tensors
        grad = _from_rows(ctx.graph, at, grad_out, ctx.alpha, ctx.kernel, ctx.dtype)
        grad.index_add_(0, at, torch.add(grad_rows, grad_out, alpha=ctx.alpha[0]))
        if ctx.graph.order is not None:
            grad = grad.index_select(0, ctx.graph.inverse)
        return grad, None, None, None, None, None


def _from_rows(
    graph: Graph,
    at: torch.Tensor,
    g: torch.Tensor,
    alpha: Sequence[float],
    kernel: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    """(N, d) ``sum_{k>=1} alpha[k] adj^k G`` in ``g``'s dtype, where ``G`` is ``g`` (R, d)
    at the unique positions ``at`` and zero elsewhere, products in ``dtype``.

    Horner's rule, ``adj (a1 G + adj (a2 G + ... adj (aK G)))``: the terms added between
    products live on ``at`` only (R rows), so the only (N, d) work is the K products and
    one widening of the last (no (N, d) layer sum).
    """
    shape = (graph.num_nodes, g.shape[1])
    if len(alpha) == 1:
        return torch.zeros(shape, dtype=g.dtype, device=g.device)
    scale = None
    top = max(abs(a) for a in alpha[1:])
    if dtype == torch.float16 and g.numel() and top > 0:
        # As _narrow, keep the terms inside float16's range, and since they are rounded
        # after their weights are applied, scale by the weights too: a term a_k G / s
        # with a tiny a_k (1e-9) would flush to zero in float16 (found by hypothesis).
        scale = _range_scale(g)
        g = g / scale
        alpha = [a / top for a in alpha]
    h = graph.scratch("narrow", shape, dtype).zero_()
    h.index_copy_(0, at, (g * alpha[-1]).to(dtype))
    for k in range(len(alpha) - 2, 0, -1):
        h = graph.matmul(h, kernel, out=graph.scratch(f"product{k % 2}", shape, dtype))
        h.index_add_(0, at, (g * alpha[k]).to(dtype))
    grad = graph.matmul(h, kernel).to(g.dtype)  # a new (N, d) tensor: the gradient
    return grad if scale is None else grad.mul_(scale).mul_(top)  # apart: no overflow


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
        scale = _range_scale(h)
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


def _checked(adj, x0, num_layers, alpha, kernel, dtype):
    """:func:`propagate`'s arguments checked: ``(graph, weights, kernel, dtype, x0)``."""
    graph = Graph.wrap(adj)
    require_symmetric(graph.adj)
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
    return graph, weights, kernel, dtype, x0


def propagate_rows(
    adj: Union[Graph, torch.Tensor],
    x0: torch.Tensor,
    rows: torch.Tensor,
    num_layers: int,
    alpha: Union[None, Sequence[float], torch.Tensor] = None,
    *,
    kernel: str = "auto",
    dtype: Optional[torch.dtype] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(propagate(adj, x0, num_layers, alpha)[rows], x0[rows])``, computing only what
    those rows need: what a training step uses.

    The last layer's product and the layer sum are computed at the (unique) rows only,
    and the backward starts from a gradient on those rows: :math:`\sum_k \alpha_k \hat A^k
    G` plus the layer-0 rows' gradient, written into one (N, d) gradient of ``x0`` (no
    dense gradient of the (N, d) propagation is ever formed). Plain LightGCN only (no
    LightGCN++ options). The values equal :func:`propagate`'s at those rows (the same
    sums in the same order).

    Args:
        adj, x0, num_layers, alpha, kernel, dtype: as for :func:`propagate`.
        rows: (R,) int64 node indices (users first, then items), repeats allowed.

    Returns:
        (R, d) final embeddings and (R, d) layer-0 embeddings of ``rows``, both
        differentiable with respect to ``x0``.
    """
    graph, weights, kernel, dtype, x0 = _checked(adj, x0, num_layers, alpha, kernel, dtype)
    if not isinstance(rows, torch.Tensor) or rows.dim() != 1 or rows.dtype != torch.int64:
        raise TypeError(f"rows must be a 1-D int64 tensor. Got {rows!r:.80}.")
    if rows.device != x0.device:
        raise ValueError(f"rows are on {rows.device} but x0 is on {x0.device}.")
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= graph.num_nodes):
        raise ValueError(f"rows must lie in [0, {graph.num_nodes}).")
    unique, inverse = torch.unique(rows, return_inverse=True)
    final, layer0 = unique_rows_propagation(graph, x0, unique, weights, kernel, dtype)
    # F.embedding, not final[inverse]: its backward is reproducible on CPU (each thread
    # owns its output rows), where index_put_'s accumulation order varies run to run.
    return F.embedding(inverse, final), F.embedding(inverse, layer0)


def unique_rows_propagation(
    graph: Graph,
    x0: torch.Tensor,
    unique: torch.Tensor,
    weights: Sequence[float],
    kernel: str,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`propagate_rows` at sorted unique, valid ``unique`` (R,) rows, with checked
    arguments (a training step's inner call): (R, d) final and (R, d) layer-0 rows."""
    if torch.is_grad_enabled() and x0.requires_grad:
        return _PropagateRows.apply(x0, unique, graph, weights, kernel, dtype)
    with torch.no_grad():
        final, layer0, _ = _rows_forward(graph, x0, unique, weights, kernel, dtype)
    return final, layer0


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
    graph, weights, kernel, dtype, x0 = _checked(adj, x0, num_layers, alpha, kernel, dtype)
    norms = check_norms(norm_left, norm_right, layer_norm)
    if norms != (0.5, 0.5, False):  # LightGCN++
        return _scaled_propagate(graph, x0, weights, kernel, dtype, norms[:2], norms[2])
    if torch.is_grad_enabled() and x0.requires_grad:
        return _SymmetricPropagate.apply(x0, graph, weights, kernel, dtype)
    with torch.no_grad():
        return _propagate_forward(graph, x0, weights, kernel, dtype)


def check_symmetric(adj: torch.Tensor, atol: Optional[float] = None) -> bool:
    """True when ``adj`` equals its transpose (:func:`.adjacency.is_symmetric`)."""
    return is_symmetric(adj, atol)
