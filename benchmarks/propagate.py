"""LightGCN propagation: ours against torch CSR/COO autograd, scipy and PyG's LightGCN.

Run from the repository root: ``python -m benchmarks.propagate --help``.
"""

from __future__ import annotations

import gc
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import click
import torch

from lightgcn_sparse import normalized_adjacency, propagate
from lightgcn_sparse.propagation import layer_weights, resolve_kernel

from . import hardware, memory_probe, report, timing
from .graphs import EdgeList, build_graphs
from .options import graph_options, min_run_time_option, model_options, run_options

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

BYTE_MODEL = (
    "Byte model (effective GB/s): one layer moves nnz*(d*s + b_idx + b_val) + (N+1)*b_idx "
    "+ N*d*s bytes (gather one d-row of X and read one column index and one value per "
    "stored entry, read the row pointers, write the (N, d) result), s = itemsize of --dtype, "
    "b_idx/b_val = bytes of our CSR's index/value dtypes; forward = K layers, "
    "forward+backward = 2K layers. Every contender is credited with the same bytes, so GB/s "
    "is a normalized speed; gathers that hit in cache make it exceed DRAM bandwidth."
)

HELP = f"""Time LightGCN propagation Y = sum_k alpha_k A^k X (K layers, d columns).

Contenders: ours (`propagate`, each kernel), torch CSR and COO `sparse.mm` under plain
autograd, scipy CSR @ dense (CPU, forward only) and PyG's `LightGCN.get_embedding` when
torch_geometric is importable. Each is checked against ours (allclose, dtype tolerance)
for the forward result and the gradient before it is timed; one that disagrees is
reported WRONG and not timed. Timing: torch.utils.benchmark.Timer.blocked_autorange on
all torch threads, median and IQR. Peak memory: {memory_probe.CPU_PEAK_METHOD}; or
{memory_probe.CUDA_PEAK_METHOD}.

\b
{textwrap.fill(BYTE_MODEL, 78)}

Graphs: ml-100k (the package's loader: cache or recbole's copy, else a synthetic graph of
its shape) and one synthetic power-law graph per --edges (users and items from
--users/--items, or E/20 users and E/100 items).
"""


@dataclass
class Contender:
    """One implementation: ``forward(x)`` and ``backward(x, g)`` (returns d(sum(Y*g))/dx)."""

    name: str
    forward: Callable[[], Any] | None = None  # () -> (N, d) result
    backward: Callable[[], Any] | None = None  # () -> (N, d) gradient
    note: str = ""
    results: dict[str, Any] = field(default_factory=dict)


def forward_bytes(adj: torch.Tensor, dim: int, layers: int) -> int:
    """Bytes of the forward under :data:`BYTE_MODEL`."""
    n, nnz = adj.shape[0], adj._nnz()
    s = adj.values().element_size()
    b_idx = adj.col_indices().element_size()
    per_layer = nnz * (dim * s + b_idx + s) + (n + 1) * b_idx + n * dim * s
    return layers * per_layer


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
    xg = x.detach().clone().requires_grad_(True)

    def fb(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            xg.grad = None
            fn(xg).backward(grad_out)
            grad, xg.grad = xg.grad, None  # hold nothing between calls
            return grad

        return run

    def nograd(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with torch.no_grad():
                return fn(x)

        return run

    auto = resolve_kernel("auto", device)
    kernels = [auto] + [k for k in ("embedding_bag", "sparse_mm") if k != auto]
    out: list[Contender] = []
    for k in kernels:

        def ours(t: torch.Tensor, k: str = k) -> torch.Tensor:
            return propagate(adj, t, layers, kernel=k)

        out.append(Contender(f"ours[{k}]", nograd(ours), fb(ours)))

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
    out.append(Contender("torch CSR sparse.mm autograd", nograd(csr), fb(csr)))
    try:
        coo = adj.to_sparse_coo().coalesce()
        coo_loop = autograd_loop(coo)
        out.append(Contender("torch COO sparse.mm autograd", nograd(coo_loop), fb(coo_loop)))
    except RuntimeError as err:
        out.append(Contender("torch COO sparse.mm autograd", note=f"ERROR: {err}"[:80]))

    if device.type == "cpu":
        out.append(scipy_contender(adj, x, alpha))
    else:
        out.append(Contender("scipy CSR @ dense", note="skipped: CPU only"))

    ok, why = hardware.pyg_available()
    if not ok:
        if why not in notes:
            notes.append(why)
        out.append(Contender("PyG LightGCN.get_embedding", note="skipped: not importable"))
    elif g.num_edges > pyg_max_edges:
        out.append(
            Contender(
                "PyG LightGCN.get_embedding",
                note=f"skipped: E > --pyg-max-edges {pyg_max_edges}",
            )
        )
    else:
        out.append(pyg_contender(g, x, grad_out, layers, device))
    return out


def scipy_contender(adj: torch.Tensor, x: torch.Tensor, alpha: list[float]) -> Contender:
    import scipy.sparse as sp

    name = "scipy CSR @ dense (fwd only)"
    try:
        n = adj.shape[0]
        mat = sp.csr_matrix(
            (
                adj.values().numpy(),
                adj.col_indices().numpy(),
                adj.crow_indices().numpy(),
            ),
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


def run_graph(
    g: EdgeList,
    device: torch.device,
    dim: int,
    layers: int,
    dtype: torch.dtype,
    min_run_time: float,
    pyg_max_edges: int,
    seed: int,
    memory: bool,
    notes: list[str],
) -> tuple[dict[str, Any], list[Contender], torch.Tensor]:
    t0 = time.perf_counter()
    adj = normalized_adjacency(
        g.users, g.items, g.num_users, g.num_items, dtype=dtype, device=device
    )
    hardware.synchronize(device)
    build_s = time.perf_counter() - t0
    n = adj.shape[0]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen).to(device=device, dtype=dtype)
    grad_out = torch.randn(n, dim, generator=gen).to(device=device, dtype=dtype)

    ref_y = propagate(adj, x, layers)
    xg = x.detach().clone().requires_grad_(True)
    propagate(adj, xg, layers).backward(grad_out)
    ref_grad = xg.grad.detach().clone()
    del xg

    contenders = make_contenders(g, adj, x, grad_out, layers, device, pyg_max_edges, notes)
    fwd_bytes = forward_bytes(adj, dim, layers)
    for c in contenders:
        for phase, fn, ref, nbytes in (
            ("fwd", c.forward, ref_y, fwd_bytes),
            ("fwd+bwd", c.backward, ref_grad, 2 * fwd_bytes),
        ):
            res: dict[str, Any] = {"status": "n/a"}
            c.results[phase] = res
            if fn is None:
                continue
            holder: list[Any] = []
            try:  # the first call checks the result and, with --memory, measures the peak
                if memory:
                    res["peak_bytes"] = memory_probe.peak_memory(
                        lambda fn=fn, holder=holder: holder.append(fn()), device
                    )
                else:
                    holder.append(fn())
                ok, err = timing.close(holder.pop(), ref, ref.dtype)
            except Exception as exc:  # a contender that cannot run is reported, not fatal
                res.update(status="ERROR", error=f"{type(exc).__name__}: {exc}"[:200])
                res.pop("peak_bytes", None)
                continue
            res["max_rel_err"] = err
            if not ok:
                res["status"] = "WRONG"
                res.pop("peak_bytes", None)
                continue
            res.update(status="ok", **timing.time_it(fn, min_run_time))
            res["gbps"] = nbytes / res["median_s"] / 1e9
    info = {
        "graph": g.name,
        "source": g.source,
        "users": g.num_users,
        "items": g.num_items,
        "edges": g.num_edges,
        "nodes": n,
        "nnz": adj._nnz(),
        "index_dtype": str(adj.col_indices().dtype),
        "adjacency_build_s": build_s,
        "forward_bytes": fwd_bytes,
    }
    return info, contenders, adj


def profile_largest(contenders: list[Contender], label: str) -> str:
    """torch.profiler op breakdown of ours and torch CSR autograd, forward+backward."""
    from torch.profiler import ProfilerActivity, profile

    parts = []
    acts = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        acts.append(ProfilerActivity.CUDA)
    for c in contenders:
        if c.name.startswith("ours[") or c.name.startswith("torch CSR"):
            for phase, fn in (("fwd", c.forward), ("fwd+bwd", c.backward)):
                if fn is None or c.results[phase].get("status") != "ok":
                    continue
                with profile(activities=acts) as prof:
                    fn()
                table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)
                parts.append(f"--- profile {label}: {c.name} {phase} ---\n{table}")
    return "\n".join(parts)


def add_ratios(contenders: list[Contender]) -> None:
    """``vs_ours`` = contender median / ours (the first contender) median, per phase."""
    ours = contenders[0].results
    for c in contenders:
        for phase, r in c.results.items():
            ref = ours.get(phase, {})
            if r.get("status") == "ok" and ref.get("status") == "ok":
                r["vs_ours"] = r["median_s"] / ref["median_s"]


def table_rows(
    info: dict[str, Any], contenders: list[Contender], triad_gbps: float
) -> list[list[str]]:
    rows = []
    for c in contenders:
        row = [info["graph"], c.name]
        for phase in ("fwd", "fwd+bwd"):
            r = c.results.get(phase, {})
            st = r.get("status", "n/a")
            if st == "ok":
                med, iqr = r["median_s"], r["iqr_s"]
                row.append(f"{report.fmt_time(med)} ± {report.fmt_time(iqr)}")
                row.append(f"{r['gbps']:.1f}")
                if phase == "fwd":
                    row.append(f"{100 * r['gbps'] / triad_gbps:.0f}%")
                row.append(f"{r['vs_ours']:.2f}x")
                row.append(report.fmt_bytes(r.get("peak_bytes")))
            else:
                label = st if st != "n/a" else (c.note or "n/a")
                if st == "WRONG":
                    label = f"WRONG (err {r['max_rel_err']:.1e})"
                row += [label, "", ""] + ([""] if phase == "fwd" else []) + [""]
        rows.append(row)
    return rows


HEADER = [
    "graph",
    "contender",
    "fwd median ± IQR",
    "fwd GB/s",
    "fwd % triad",
    "fwd vs ours",
    "fwd peak",
    "fwd+bwd median ± IQR",
    "fwd+bwd GB/s",
    "fwd+bwd vs ours",
    "fwd+bwd peak",
]


def targets(graphs: list[dict[str, Any]], triad_gbps: float) -> list[dict[str, Any]]:
    """The issue's targets, measured: ratio to ours (fwd+bwd), and forward % of triad."""
    out = []
    synthetic = [g for g in graphs if g["graph"] != "ml-100k"]
    if synthetic:
        big = max(synthetic, key=lambda g: g["edges"])
        c = big["contenders"]
        ours = c.get(next(iter(c)), {})
        csr = c.get("torch CSR sparse.mm autograd", {})
        if csr.get("fwd+bwd", {}).get("status") == "ok":
            what, ratio = "fwd+bwd: torch CSR autograd / ours", csr["fwd+bwd"]["vs_ours"]
            out.append(report.target(big["graph"], what, 7.0, ratio))
        if ours.get("fwd", {}).get("status") == "ok":
            pct = 100 * ours["fwd"]["gbps"] / triad_gbps
            out.append(report.target(big["graph"], "ours forward GB/s as % of triad", 60.0, pct))
    for g in graphs:
        if g["graph"] == "ml-100k":
            pyg = g["contenders"].get("PyG LightGCN.get_embedding", {})
            if pyg.get("fwd+bwd", {}).get("status") == "ok":
                ratio = pyg["fwd+bwd"]["vs_ours"]
                out.append(report.target(g["graph"], "fwd+bwd: PyG LightGCN / ours", 50.0, ratio))
    return out


@click.command(help=HELP)
@run_options()
@graph_options((80_000, 1_000_000, 5_000_000))
@model_options
@click.option("--dtype", type=click.Choice(list(DTYPES)), default="float32", show_default=True)
@min_run_time_option
@click.option("--pyg-max-edges", type=click.IntRange(0), default=250_000, show_default=True,
              help="Skip PyG on larger graphs (it materializes E x d messages per "
              "layer).")  # fmt: skip
@click.option("--triad-mib", type=click.IntRange(1), default=None,
              help="MiB per triad array (default 128 on CPU, 512 on CUDA).")  # fmt: skip
@click.option("--memory/--no-memory", default=True, show_default=True, help="Peak memory.")
@click.option("--profile", is_flag=True, help="Print a torch.profiler breakdown (largest graph).")
def main(device, threads, seed, json_path, edges, users, items, ml100k, real, dim, layers,
         dtype, min_run_time, pyg_max_edges, triad_mib, memory, profile) -> None:  # fmt: skip
    dev, hw = hardware.start(device, threads)
    torch_dtype = DTYPES[dtype]
    edges = tuple(e for e in edges if e != 0)
    graphs = build_graphs(edges, users, items, ml100k, real, seed)
    if not graphs:
        raise click.UsageError("no graph to run: give --edges or --ml100k.")
    triad_mib = triad_mib or (128 if dev.type == "cpu" else 512)
    triad = timing.triad_bandwidth(dev, numel=triad_mib * 2**18)
    click.echo(f"triad a = b + s*c (float32, 3 x {triad['array_mib']:.0f} MiB, best of 10): "
               f"{triad['gbps']:.1f} GB/s")  # fmt: skip
    notes: list[str] = []
    done = []
    for g in graphs:
        click.echo(f"running {g.name} ({g.source}): {g.num_users} users, {g.num_items} items, "
                   f"{g.num_edges} edges ...", err=True)  # fmt: skip
        info, contenders, adj = run_graph(
            g, dev, dim, layers, torch_dtype, min_run_time, pyg_max_edges, seed, memory, notes
        )
        add_ratios(contenders)
        done.append((info, contenders, adj))
    prof_text = profile_largest(done[-1][1], done[-1][0]["graph"]) if profile else ""

    rows: list[list[str]] = []
    results = []
    for info, contenders, _ in done:
        rows += table_rows(info, contenders, triad["gbps"])
        info["contenders"] = {c.name: c.results for c in contenders}
        results.append(info)
    click.echo(
        f"LightGCN propagation, d={dim}, K={layers}, {dtype}, device {dev}; "
        f"ratios are contender time / ours[{resolve_kernel('auto', dev)}] time"
    )
    click.echo(report.format_table(HEADER, rows))
    for info, _, _ in done:
        click.echo(
            f"{info['graph']}: {info['source']}, U={info['users']} I={info['items']} "
            f"E={info['edges']} nnz={info['nnz']} ({info['index_dtype']}), "
            f"adjacency built in {report.fmt_time(info['adjacency_build_s'])}"
        )
    goals = targets(results, triad["gbps"])
    report.echo_targets(goals)
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(hardware.finish(hw))
    if memory:
        click.echo(f"peak memory: {memory_probe.method(dev)}")
    click.echo(BYTE_MODEL)
    if prof_text:
        click.echo(prof_text)
    config = {"device": str(dev), "dim": dim, "layers": layers, "dtype": dtype,
              "min_run_time": min_run_time, "pyg_max_edges": pyg_max_edges, "seed": seed,
              "reference": f"ours[{resolve_kernel('auto', dev)}]"}  # fmt: skip
    report.write_json(json_path, {
        "benchmark": "propagate", "hardware": hw, "config": config, "byte_model": BYTE_MODEL,
        "memory_method": memory_probe.method(dev), "triad": triad, "graphs": results,
        "targets": goals, "notes": notes,
    })  # fmt: skip
    del done
    gc.collect()


if __name__ == "__main__":
    main()
