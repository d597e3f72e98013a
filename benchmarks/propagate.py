"""LightGCN propagation: ours against torch CSR/COO autograd, scipy and PyG's LightGCN, and
ours with each propagation dtype and node order.

Run from the repository root: ``python -m benchmarks.propagate --help``.
"""

from __future__ import annotations

import textwrap
import time
from typing import Any, Callable, Optional

import click
import numpy as np
import torch

from lightgcn_sparse import normalized_adjacency
from lightgcn_sparse.propagation import DTYPES as PROPAGATION_DTYPES
from lightgcn_sparse.propagation import resolve_kernel

from . import hardware, memory_probe, report, timing
from .contenders import (
    Contender,
    forward_bytes,
    make_contenders,
    make_levers,
    references,
)
from .graphs import EdgeList, build_graphs, hub_shape
from .options import graph_options, min_run_time_option, model_options, run_options

DTYPES = {"float64": torch.float64, **PROPAGATION_DTYPES}

BYTE_MODEL = (
    "Byte model (effective GB/s): one layer moves nnz*(d*s + b_idx + b_val) + (N+1)*b_idx "
    "+ N*d*s bytes (gather one d-row of X and read one column index and one value per "
    "stored entry, read the row pointers, write the (N, d) result), s = itemsize of --dtype, "
    "b_idx/b_val = bytes of our CSR's index/value dtypes; forward = K layers, "
    "forward+backward = 2K layers. Every contender and every lever row is credited with the "
    "same bytes (narrow rows too), so GB/s is a normalized speed; gathers that hit in cache, "
    "or rows of half the bytes, make it exceed DRAM bandwidth."
)

HELP = f"""Time LightGCN propagation Y = sum_k alpha_k A^k X (K layers, d columns).

Contenders: ours (`propagate`, each kernel), torch CSR and COO `sparse.mm` under plain
autograd, K bare torch CSR `sparse.mm` products (forward only), scipy CSR @ dense (CPU,
forward only) and PyG's `LightGCN.get_embedding` when torch_geometric is importable.
Levers (float32 x0): ours with each propagation dtype (products in float32, bfloat16,
float16) and with each node order (degree, rcm, balanced: a Graph of the permuted
adjacency). Every row is checked against a float64 scipy reference (forward and
gradient; max abs error relative to max|ref|, allclose at the row's dtype tolerance)
before it is timed; one that disagrees is reported WRONG and not timed. Timing:
torch.utils.benchmark.Timer.blocked_autorange on all torch threads, median and IQR.
Peak memory: {memory_probe.CPU_PEAK_METHOD}; or {memory_probe.CUDA_PEAK_METHOD}.

\b
{textwrap.fill(BYTE_MODEL, 78)}

Graphs: ml-100k (the package's loader: cache or recbole's copy, else a synthetic graph of
its shape), one synthetic power-law graph per --edges (users and items from --users/--items,
or E/20 users and E/100 items), and the hub graph of --hub-edges (E/10 users, E/50 items,
Pareto item popularity capped at E/50 users: at 1M edges, 100k users, 20k items, hubs of
20k users).
"""


def measure(
    c: Contender,
    refs: dict[str, tuple[torch.Tensor, Optional[torch.Tensor]]],
    fwd_bytes: int,
    dtype: torch.dtype,
    device: torch.device,
    min_run_time: float,
    memory: bool,
) -> None:
    """Check each phase of ``c`` against its float64 reference, then time it if it agrees."""
    ref_y, ref_grad = refs[c.reference]
    for phase, fn, ref, nbytes in (
        ("fwd", c.forward, ref_y, fwd_bytes),
        ("fwd+bwd", c.backward, ref_grad, 2 * fwd_bytes),
    ):
        res: dict[str, Any] = {"status": "n/a"}
        c.results[phase] = res
        if fn is None or ref is None:
            continue
        try:  # the first call checks the result and, with --memory, measures the peak
            got, peak = _first_call(fn, device, memory)
            if memory:
                res["peak_bytes"] = peak
            ok, err = timing.close(got, ref, c.dtype or dtype)
            del got
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


def _first_call(fn: Callable[[], Any], device: torch.device, memory: bool):
    """``fn()`` and, with ``memory``, the peak memory of that call (its result included)."""
    if not memory:
        return fn(), None
    holder: list[Any] = []
    peak = memory_probe.peak_memory(lambda: holder.append(fn()), device)
    return holder.pop(), peak


def add_ratios(rows: list[Contender]) -> None:
    """``vs_ours`` = row median / the first row's median, per phase."""
    ours = rows[0].results
    for c in rows:
        for phase in ("fwd", "fwd+bwd"):
            r, ref = c.results.get(phase, {}), ours.get(phase, {})
            if r.get("status") == "ok" and ref.get("status") == "ok":
                r["vs_ours"] = r["median_s"] / ref["median_s"]


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
    levers: bool,
    notes: list[str],
) -> tuple[dict[str, Any], list[Contender], list[Contender]]:
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
    refs = references(g, x, grad_out, layers)
    fwd_bytes = forward_bytes(adj, dim, layers)

    contenders = make_contenders(g, adj, x, grad_out, layers, device, pyg_max_edges, notes)
    for c in contenders:
        measure(c, refs, fwd_bytes, dtype, device, min_run_time, memory)
    add_ratios(contenders)
    lever_rows: list[Contender] = []
    order_build_s: dict[str, float] = {}
    if levers and dtype == torch.float32:
        lever_rows, order_build_s = make_levers(adj, x, grad_out, layers)
        for c in lever_rows:
            measure(c, refs, fwd_bytes, dtype, device, min_run_time, memory)
        add_ratios(lever_rows)
    elif levers:
        note = "levers (propagation dtypes, node orders) run with --dtype float32 only."
        if note not in notes:
            notes.append(note)
    degrees = np.sort(g.item_degrees())[::-1]
    info = {
        "graph": g.name,
        "source": g.source,
        "users": g.num_users,
        "items": g.num_items,
        "edges": g.num_edges,
        "nodes": n,
        "nnz": adj._nnz(),
        "top5_item_degrees": degrees[:5].tolist(),
        "index_dtype": str(adj.col_indices().dtype),
        "adjacency_build_s": build_s,
        "node_order_build_s": order_build_s,
        "forward_bytes": fwd_bytes,
    }
    return info, contenders, lever_rows


def profile_graph(rows: list[Contender], label: str) -> str:
    """torch.profiler op breakdown of ours (every kernel and lever) and torch CSR, forward
    and forward+backward."""
    from torch.profiler import ProfilerActivity, profile

    parts = []
    acts = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        acts.append(ProfilerActivity.CUDA)
    for c in rows:
        if c.name.startswith("ours[") or c.name.startswith("torch CSR"):
            for phase, fn in (("fwd", c.forward), ("fwd+bwd", c.backward)):
                if fn is None or c.results[phase].get("status") != "ok":
                    continue
                with profile(activities=acts) as prof:
                    fn()
                table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)
                parts.append(f"--- profile {label}: {c.name} {phase} ---\n{table}")
    return "\n".join(parts)


def _cells(r: dict[str, Any], note: str, triad_gbps: float, error: bool) -> list[str]:
    """One phase's cells: time, GB/s, (% triad), vs ours, (error), peak."""
    st = r.get("status", "n/a")
    if st == "ok":
        cells = [f"{report.fmt_time(r['median_s'])} ± {report.fmt_time(r['iqr_s'])}",
                 f"{r['gbps']:.1f}", f"{100 * r['gbps'] / triad_gbps:.0f}%",
                 f"{r['vs_ours']:.2f}x"]  # fmt: skip
        if error:
            cells.append(f"{r['max_rel_err']:.1e}")
        return cells + [report.fmt_bytes(r.get("peak_bytes"))]
    label = st if st != "n/a" else (note or "n/a")
    if st == "WRONG":
        label = f"WRONG (err {r['max_rel_err']:.1e})"
    return [label] + [""] * (4 + error)


def table_rows(
    info: dict[str, Any], rows: list[Contender], triad_gbps: float, error: bool = False
) -> list[list[str]]:
    out = []
    for c in rows:
        cells = [info["graph"], c.name]
        for phase in ("fwd", "fwd+bwd"):
            cells += _cells(c.results.get(phase, {}), c.note, triad_gbps, error)
        out.append(cells)
    return out


def header(error: bool) -> list[str]:
    cols = ["median ± IQR", "GB/s", "% triad", "vs ours"] + (["err"] if error else []) + ["peak"]
    return ["graph", "row"] + [f"fwd {c}" for c in cols] + [f"fwd+bwd {c}" for c in cols]


def targets(graphs: list[dict[str, Any]], triad_gbps: float, layers: int) -> list[dict]:
    """The issues' targets, measured: ratios to ours, forward % of triad."""
    out = []
    powerlaw = [g for g in graphs if g["graph"].startswith("powerlaw-")]
    if powerlaw:
        big = max(powerlaw, key=lambda g: g["edges"])
        ours, csr = _results(big, 0), big["contenders"].get("torch CSR sparse.mm autograd", {})
        if _ok(csr, "fwd+bwd"):
            what, ratio = "fwd+bwd: torch CSR autograd / ours", csr["fwd+bwd"]["vs_ours"]
            out.append(report.target(big["graph"], what, 7.0, ratio))
        if _ok(ours, "fwd"):
            pct = 100 * ours["fwd"]["gbps"] / triad_gbps
            out.append(report.target(big["graph"], "ours forward GB/s as % of triad", 60.0, pct))
    for g in graphs:
        cont = g["contenders"]
        if g["graph"] == "ml-100k" and _ok(cont.get("PyG LightGCN.get_embedding", {}), "fwd+bwd"):
            ratio = cont["PyG LightGCN.get_embedding"]["fwd+bwd"]["vs_ours"]
            out.append(report.target(g["graph"], "fwd+bwd: PyG LightGCN / ours", 50.0, ratio))
        if not g["graph"].startswith("hubs-"):
            continue
        products = cont.get(f"torch CSR sparse.mm x{layers} (products only)", {})
        if _ok(products, "fwd"):
            what = f"fwd: {layers} torch CSR sparse.mm products / ours"
            out.append(report.target(g["graph"], what, 1.0, products["fwd"]["vs_ours"]))
        csr = cont.get("torch CSR sparse.mm autograd", {})
        if _ok(csr, "fwd+bwd"):
            what = "fwd+bwd: torch CSR autograd / ours"
            out.append(report.target(g["graph"], what, 5.0, csr["fwd+bwd"]["vs_ours"]))
    return out


def _results(g: dict[str, Any], index: int) -> dict[str, Any]:
    return list(g["contenders"].values())[index]


def _ok(res: dict[str, Any], phase: str) -> bool:
    return res.get(phase, {}).get("status") == "ok"


@click.command(help=HELP)
@run_options()
@graph_options((80_000, 1_000_000, 5_000_000))
@click.option("--hubs/--no-hubs", default=True, show_default=True,
              help="Include the hub-heavy graph of --hub-edges.")  # fmt: skip
@click.option("--hub-edges", type=click.IntRange(100), default=1_000_000, show_default=True,
              help="Edges of the hub graph (E/10 users, E/50 items, hubs of E/50 "
              "users).")  # fmt: skip
@model_options
@click.option("--dtype", type=click.Choice(list(DTYPES)), default="float32", show_default=True,
              help="dtype of x0 and the adjacency (the levers need float32).")  # fmt: skip
@click.option("--levers/--no-levers", default=True, show_default=True,
              help="Rows of ours per propagation dtype and per node order.")  # fmt: skip
@min_run_time_option
@click.option("--pyg-max-edges", type=click.IntRange(0), default=250_000, show_default=True,
              help="Skip PyG on larger graphs (it materializes E x d messages per "
              "layer).")  # fmt: skip
@click.option("--triad-mib", type=click.IntRange(1), default=None,
              help="MiB per triad array (default 128 on CPU, 512 on CUDA).")  # fmt: skip
@click.option("--memory/--no-memory", default=True, show_default=True, help="Peak memory.")
@click.option("--profile", is_flag=True,
              help="Print a torch.profiler breakdown of ours and torch CSR (last graph).")
def main(device, threads, seed, json_path, edges, users, items, ml100k, real, hubs, hub_edges,
         dim, layers, dtype, levers, min_run_time, pyg_max_edges, triad_mib, memory,
         profile) -> None:  # fmt: skip
    dev, hw = hardware.start(device, threads)
    torch_dtype = DTYPES[dtype]
    edges = tuple(e for e in edges if e != 0)
    graphs = build_graphs(edges, users, items, ml100k, real, seed, hub_edges if hubs else 0)
    if not graphs:
        raise click.UsageError("no graph to run: give --edges, --ml100k or --hubs.")
    triad_mib = triad_mib or (128 if dev.type == "cpu" else 512)
    triad = timing.triad_bandwidth(dev, numel=triad_mib * 2**18)
    click.echo(f"triad a = b + s*c (float32, 3 x {triad['array_mib']:.0f} MiB, best of 10): "
               f"{triad['gbps']:.1f} GB/s")  # fmt: skip
    notes: list[str] = []
    done = []
    for g in graphs:
        click.echo(f"running {g.name} ({g.source}): {g.num_users} users, {g.num_items} items, "
                   f"{g.num_edges} edges ...", err=True)  # fmt: skip
        done.append(run_graph(g, dev, dim, layers, torch_dtype, min_run_time, pyg_max_edges,
                              seed, memory, levers, notes))  # fmt: skip
    last, last_contenders, last_levers = done[-1]
    prof_text = profile_graph(last_contenders + last_levers, last["graph"]) if profile else ""

    auto = resolve_kernel("auto", dev)
    contender_rows, lever_rows, results = [], [], []
    for info, contenders, levers_done in done:
        contender_rows += table_rows(info, contenders, triad["gbps"])
        lever_rows += table_rows(info, levers_done, triad["gbps"], error=True)
        info["contenders"] = {c.name: c.results for c in contenders}
        info["levers"] = {c.name: c.results for c in levers_done}
        results.append(info)
    click.echo(f"LightGCN propagation, d={dim}, K={layers}, {dtype}, device {dev}; "
               f"ratios are row time / ours[{auto}] time")  # fmt: skip
    click.echo(report.format_table(header(False), contender_rows))
    if lever_rows:
        click.echo("Levers: ours[auto] per propagation dtype and node order, float32 x0; "
                   "ratios are row time / ours[float32, order none]; err = max|y - ref| / "
                   "max|ref| against float64 (fwd: y, fwd+bwd: the gradient)")  # fmt: skip
        click.echo(report.format_table(header(True), lever_rows))
    for info in results:
        built = info["node_order_build_s"].items()
        orders = ", ".join(f"{k} {report.fmt_time(v)}" for k, v in built)
        click.echo(
            f"{info['graph']}: {info['source']}, U={info['users']} I={info['items']} "
            f"E={info['edges']} nnz={info['nnz']} ({info['index_dtype']}), top-5 item degrees "
            f"{info['top5_item_degrees']}, adjacency built in "
            f"{report.fmt_time(info['adjacency_build_s'])}"
            + (f"; node orders built in: {orders}" if orders else "")
        )
    goals = targets(results, triad["gbps"], layers)
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
              "hub_edges": hub_edges if hubs else 0, "hub_shape": hub_shape(hub_edges),
              "reference": "float64 scipy", "ratios_to": f"ours[{auto}]"}  # fmt: skip
    report.write_json(json_path, {
        "benchmark": "propagate", "hardware": hw, "config": config, "byte_model": BYTE_MODEL,
        "memory_method": memory_probe.method(dev), "triad": triad, "graphs": results,
        "targets": goals, "notes": notes,
    })  # fmt: skip


if __name__ == "__main__":
    main()
