"""The contenders of ``benchmarks.propagate``: ours (each kernel, dtype and node order),
torch CSR/COO autograd, scipy and PyG's LightGCN, each with its float64 reference check."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import scipy.sparse as sp
import torch

from lightgcn_sparse import normalized_adjacency, propagate
from lightgcn_sparse.adjacency import NODE_ORDERS, node_order, permute_adjacency
from lightgcn_sparse.propagation import DTYPES as PROPAGATION_DTYPES
from lightgcn_sparse.propagation import Graph, layer_weights, resolve_kernel

from . import hardware
from .graphs import EdgeList


@dataclass
class Contender:
    """One implementation: ``forward()`` and ``backward()`` (returns d(sum(Y*g))/dx).

    ``reference`` names the float64 result it must match: ``"sum"`` (the LightGCN sum) or
    ``"power"`` (``A^K X``, for bare products). ``dtype`` sets the check's tolerance.
    """

    name: str
    forward: Optional[Callable[[], Any]] = None  # () -> (N, d) result
    backward: Optional[Callable[[], Any]] = None  # () -> (N, d) gradient
    note: str = ""
    reference: str = "sum"
    dtype: Optional[torch.dtype] = None
    results: dict[str, Any] = field(default_factory=dict)


def forward_bytes(adj: torch.Tensor, dim: int, layers: int) -> int:
    """Bytes of the forward under :data:`BYTE_MODEL`."""
    n, nnz = adj.shape[0], adj._nnz()
    s = adj.values().element_size()
    b_idx = adj.col_indices().element_size()
    per_layer = nnz * (dim * s + b_idx + s) + (n + 1) * b_idx + n * dim * s
    return layers * per_layer


def references(
    g: EdgeList, x: torch.Tensor, grad_out: torch.Tensor, layers: int
) -> dict[str, tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """float64 results by scipy, on CPU: the sum and its gradient, and ``A^K X``.

    The adjacency is built in float64 and multiplied by scipy, so nothing of ours but
    :func:`normalized_adjacency` is in the reference.
    """
    adj = normalized_adjacency(g.users, g.items, g.num_users, g.num_items, dtype=torch.float64)
    n = adj.shape[0]
    mat = sp.csr_matrix(
        (adj.values().numpy(), adj.col_indices().numpy(), adj.crow_indices().numpy()), (n, n)
    )
    alpha = layer_weights(layers, None)

    def run(v: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        h = v.detach().to(device="cpu", dtype=torch.float64).numpy()
        acc = alpha[0] * h
        for a in alpha[1:]:
            h = mat @ h
            acc += a * h
        return acc, h

    y, power = run(x)
    grad, _ = run(grad_out)
    return {"sum": (torch.from_numpy(y), torch.from_numpy(grad)),
            "power": (torch.from_numpy(power), None)}  # fmt: skip


def _fwd(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], Any]:
    def run() -> torch.Tensor:
        with torch.no_grad():
            return fn(x)

    return run


def _fwd_bwd(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, grad_out: torch.Tensor
) -> Callable[[], Any]:
    xg = x.detach().clone().requires_grad_(True)

    def run() -> torch.Tensor:
        xg.grad = None
        fn(xg).backward(grad_out)
        grad, xg.grad = xg.grad, None  # hold nothing between calls
        return grad

    return run


def make_contenders(
    g: EdgeList,
    adj: torch.Tensor,
    x: torch.Tensor,
    grad_out: torch.Tensor,
    layers: int,
    device: torch.device,
    pyg_max_edges: int,
    notes: list[str],
) -> list[Contender]:
    """The contenders on one graph; the first is ours with the device's default kernel."""
    alpha = layer_weights(layers, None)
    auto = resolve_kernel("auto", device)
    out: list[Contender] = []
    graph = Graph(adj)
    graph.settle_split(x.detach())  # the CPU row split, chosen before anything is timed
    for k in [auto] + [k for k in ("embedding_bag", "sparse_mm") if k != auto]:

        def ours(t: torch.Tensor, k: str = k) -> torch.Tensor:
            return propagate(graph, t, layers, kernel=k)

        out.append(Contender(f"ours[{k}]", _fwd(ours, x), _fwd_bwd(ours, x, grad_out)))

    def autograd_loop(mat: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(t: torch.Tensor) -> torch.Tensor:
            h = t
            acc = t * alpha[0]
            for a in alpha[1:]:
                h = torch.sparse.mm(mat, h)
                acc += a * h
            return acc

        return run

    csr = autograd_loop(adj)
    out.append(Contender("torch CSR sparse.mm autograd", _fwd(csr, x), _fwd_bwd(csr, x, grad_out)))

    def products(t: torch.Tensor) -> torch.Tensor:
        for _ in range(layers):
            t = torch.sparse.mm(adj, t)
        return t

    name = f"torch CSR sparse.mm x{layers} (products only)"
    out.append(Contender(name, _fwd(products, x), note="forward only", reference="power"))
    try:
        coo = autograd_loop(adj.to_sparse_coo().coalesce())
        out.append(Contender("torch COO sparse.mm autograd", _fwd(coo, x),
                             _fwd_bwd(coo, x, grad_out)))  # fmt: skip
    except RuntimeError as err:
        out.append(Contender("torch COO sparse.mm autograd", note=f"ERROR: {err}"[:80]))
    if device.type == "cpu":
        out.append(scipy_contender(adj, x, alpha))
    else:
        out.append(Contender("scipy CSR @ dense (fwd only)", note="skipped: CPU only"))
    ok, why = hardware.pyg_available()
    if not ok:
        if why not in notes:
            notes.append(why)
        out.append(Contender("PyG LightGCN.get_embedding", note="skipped: not importable"))
    elif g.num_edges > pyg_max_edges:
        skipped = f"skipped: E > --pyg-max-edges {pyg_max_edges}"
        out.append(Contender("PyG LightGCN.get_embedding", note=skipped))
    else:
        out.append(pyg_contender(g, x, grad_out, layers, device))
    return out


def make_levers(
    adj: torch.Tensor, x: torch.Tensor, grad_out: torch.Tensor, layers: int
) -> tuple[list[Contender], dict[str, float]]:
    """Ours with each propagation dtype (built order) and each node order (float32 rows).

    Returns the rows, the first being float32 in the built order, and the seconds each node
    order took to compute and apply (``node_order`` + ``permute_adjacency``).
    """
    rows, build_s = [], {}
    graphs = {"none": Graph(adj)}
    for order in NODE_ORDERS[1:]:
        t0 = time.perf_counter()
        perm = node_order(adj, order, max(torch.get_num_threads(), 1))
        graphs[order] = Graph(permute_adjacency(adj, perm), perm)
        build_s[order] = time.perf_counter() - t0
    cases = [(name, "none") for name in PROPAGATION_DTYPES]
    cases += [("float32", order) for order in NODE_ORDERS[1:]]
    for name, order in cases:
        graph, dtype = graphs[order], PROPAGATION_DTYPES[name]
        graph.settle_split(x.detach().to(dtype))  # chosen before anything is timed

        def ours(t: torch.Tensor, graph: Graph = graph, dtype: torch.dtype = dtype):
            return propagate(graph, t, layers, dtype=dtype)

        rows.append(Contender(f"ours[{name}, order {order}]", _fwd(ours, x),
                              _fwd_bwd(ours, x, grad_out), dtype=dtype))  # fmt: skip
        rows[-1].results["lever"] = {"dtype": name, "order": order}
    return rows, build_s


def scipy_contender(adj: torch.Tensor, x: torch.Tensor, alpha: list[float]) -> Contender:
    name = "scipy CSR @ dense (fwd only)"
    try:
        n = adj.shape[0]
        mat = sp.csr_matrix(
            (adj.values().numpy(), adj.col_indices().numpy(), adj.crow_indices().numpy()),
            shape=(n, n),
        )
        xn = x.detach().numpy()
    except (TypeError, ValueError) as err:  # e.g. bfloat16 has no numpy dtype
        return Contender(name, note=f"ERROR: {err}"[:80])

    def run() -> torch.Tensor:
        h = xn
        acc = xn * alpha[0]
        for a in alpha[1:]:
            h = mat @ h
            acc += a * h
        return torch.from_numpy(acc)

    return Contender(name, run, None, note="forward only")


def pyg_contender(
    g: EdgeList, x: torch.Tensor, grad_out: torch.Tensor, layers: int, device: torch.device
) -> Contender:
    """PyG's model on the same edges in both directions; it applies its own gcn_norm."""
    from torch_geometric.nn import LightGCN

    n = g.num_users + g.num_items
    u = torch.from_numpy(g.users).to(device)
    i = torch.from_numpy(g.items).to(device) + g.num_users
    edge_index = torch.stack([torch.cat([u, i]), torch.cat([i, u])])  # (2, 2E)
    model = LightGCN(n, x.shape[1], layers).to(device=device, dtype=x.dtype)
    with torch.no_grad():
        model.embedding.weight.copy_(x)
    weight = model.embedding.weight

    def fwd() -> torch.Tensor:
        with torch.no_grad():
            return model.get_embedding(edge_index)

    def fb() -> torch.Tensor:
        weight.grad = None
        model.get_embedding(edge_index).backward(grad_out)
        grad, weight.grad = weight.grad, None
        return grad

    return Contender("PyG LightGCN.get_embedding", fwd, fb)


