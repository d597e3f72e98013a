"""Negative sampling: our exact sampler against PyG's and a plain Python rejection loop.

Run from the repository root: ``python -m benchmarks.sampler --help``.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any, Callable

import click
import numpy as np
import torch

from lightgcn_sparse import BPRSampler

from . import common

HELP = """Draw one negative item for every training edge (an epoch's worth) and time it.

Contenders: ours (`BPRSampler.negatives`, built once per graph; its build time is shown
apart), PyG's `structured_negative_sampling` on the edges (user u, node U + item i) of
the LightGCN node numbering with num_nodes = U + I (skipped with a note when
torch_geometric is not importable), and a plain Python loop that rejects with a
per-user `set` (timed on the first --python-samples edges; rates are per sample).

Exactness of each: the fraction of returned negatives that are in fact positives of
their user (ours must be 0), and the fraction that are not item ids at all (PyG draws
from all U + I nodes). Timing: Timer.blocked_autorange on all torch threads.
"""


def pyg_sampler() -> Callable[[torch.Tensor, int], torch.Tensor] | None:
    ok, _ = common.pyg_available()
    if not ok:
        return None
    from torch_geometric.utils import structured_negative_sampling

    def run(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
        return structured_negative_sampling(edge_index, num_nodes)[2]

    return run


def python_loop(
    positives: list[set[int]], users: list[int], num_items: int, seed: int
) -> Callable[[], list[int]]:
    rng = random.Random(seed)

    def run() -> list[int]:
        out = []
        draw = rng.randrange
        for u in users:
            seen = positives[u]
            j = draw(num_items)
            while j in seen:
                j = draw(num_items)
            out.append(j)
        return out

    return run


def exactness(
    sampler: BPRSampler, users: torch.Tensor, negatives: torch.Tensor, num_items: int
) -> dict[str, float]:
    """Fractions of ``negatives`` that are positives of their user, or not items at all."""
    negatives = negatives.to(users.device)
    is_item = (negatives >= 0) & (negatives < num_items)
    hits = sampler.interactions.contains(users[is_item], negatives[is_item])
    n = max(1, negatives.numel())
    return {
        "frac_positive": float(hits.sum()) / n,
        "frac_not_item": float((~is_item).sum()) / n,
    }


def run_graph(
    name: str,
    source: str,
    u_np: np.ndarray,
    i_np: np.ndarray,
    num_users: int,
    num_items: int,
    device: torch.device,
    min_run_time: float,
    python_samples: int,
    seed: int,
    notes: list[str],
) -> dict[str, Any]:
    edges = int(u_np.size)
    users = torch.from_numpy(u_np).to(device)
    items = torch.from_numpy(i_np).to(device)
    t0 = time.perf_counter()
    sampler = BPRSampler.from_pairs(users, items, num_users, num_items, device)
    common.synchronize(device)
    build_s = time.perf_counter() - t0
    gen = torch.Generator(device=device).manual_seed(seed)
    res: dict[str, Any] = {
        "graph": name,
        "source": source,
        "users": num_users,
        "items": num_items,
        "edges": edges,
        "ours_build_s": build_s,
        "contenders": {},
    }

    def record(label: str, fn: Callable[[], Any], n: int, to_tensor: Callable) -> None:
        entry: dict[str, Any] = {"samples_per_call": n}
        neg = to_tensor(fn())
        entry.update(exactness(sampler, users[:n], neg, num_items))
        entry.update(common.time_it(fn, min_run_time))
        entry["samples_per_s"] = n / entry["median_s"]
        res["contenders"][label] = entry

    record("ours BPRSampler.negatives", lambda: sampler.negatives(users, gen), edges, lambda t: t)

    pyg = pyg_sampler()
    if pyg is None:
        _, why = common.pyg_available()
        if why not in notes:
            notes.append(why)
        res["contenders"]["PyG structured_negative_sampling"] = {"status": "skipped"}
    else:
        edge_index = torch.stack([users, items + num_users])  # (2, E) user -> item node
        torch.manual_seed(seed)  # PyG draws from the global generator
        record(
            "PyG structured_negative_sampling",
            lambda: pyg(edge_index, num_users + num_items),
            edges,
            lambda t: t.to(device) - num_users,  # node id -> item id (negative if a user)
        )

    n_py = min(edges, python_samples)
    if n_py > 0:
        t0 = time.perf_counter()
        ip = sampler.interactions.indptr.cpu().numpy()
        ix = sampler.interactions.indices.cpu().numpy()
        positives = [set(ix[ip[k] : ip[k + 1]].tolist()) for k in range(num_users)]
        res["python_sets_build_s"] = time.perf_counter() - t0
        loop = python_loop(positives, u_np[:n_py].tolist(), num_items, seed)
        record(
            "Python loop + set (rejection)",
            loop,
            n_py,
            lambda out: torch.tensor(out, dtype=torch.int64, device=device),
        )

    ours = res["contenders"]["ours BPRSampler.negatives"]["samples_per_s"]
    for entry in res["contenders"].values():
        if "samples_per_s" in entry:
            entry["ours_speedup"] = ours / entry["samples_per_s"]
    return res


HEADER = [
    "graph",
    "contender",
    "samples/call",
    "median ± IQR",
    "samples/s",
    "ours is x faster",
    "frac. positives",
    "frac. not items",
]


@click.command(help=HELP)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:i] (ours).")
@click.option(
    "--edges",
    type=int,
    multiple=True,
    default=(1_000_000, 5_000_000),
    show_default=True,
    help="Edges of each synthetic power-law graph (E/20 users, E/100 items; 0 alone: none).",
)
@click.option("--ml100k/--no-ml100k", default=True, show_default=True)
@click.option("--real/--synthetic", default=True, show_default=True)
@click.option(
    "--python-samples",
    type=click.IntRange(0),
    default=200_000,
    show_default=True,
    help="Edges the Python loop samples for (0: skip it).",
)
@click.option("--min-run-time", type=click.FloatRange(0.0), default=1.0, show_default=True)
@click.option("--threads", type=int, default=None, help="torch.set_num_threads.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_path", default=None, help="Write the results here as JSON.")
def main(
    device: str,
    edges: tuple[int, ...],
    ml100k: bool,
    real: bool,
    python_samples: int,
    min_run_time: float,
    threads: int | None,
    seed: int,
    json_path: str | None,
) -> None:
    dev = common.resolve_device(device)
    common.set_threads(threads)
    edges = tuple(e for e in edges if e != 0)
    hw = common.hardware(dev)
    load_before = os.getloadavg()
    click.echo(common.hardware_line(hw))
    graphs = []
    if ml100k:
        u, i, nu, ni, source = common.load_ml100k(real)
        graphs.append(("ml-100k", source, u, i, nu, ni))
    for e in edges:
        nu, ni = common.scaled_shape(e)
        try:
            u, i = common.powerlaw_bipartite(nu, ni, e, seed=seed)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--edges") from err
        graphs.append((f"powerlaw-{common.fmt_count(e)}", "synthetic power-law", u, i, nu, ni))
    if not graphs:
        raise click.UsageError("no graph to run: give --edges or --ml100k.")
    notes: list[str] = []
    results = []
    for name, source, u, i, nu, ni in graphs:
        click.echo(f"running {name}: {nu} users, {ni} items, {u.size} edges ...", err=True)
        results.append(
            run_graph(name, source, u, i, nu, ni, dev, min_run_time, python_samples, seed, notes)
        )
    rows = []
    for r in results:
        for label, e in r["contenders"].items():
            if "samples_per_s" not in e:
                rows.append([r["graph"], label, "skipped", "", "", "", "", ""])
                continue
            rows.append(
                [
                    r["graph"],
                    label,
                    common.fmt_count(e["samples_per_call"]),
                    f"{common.fmt_time(e['median_s'])} ± {common.fmt_time(e['iqr_s'])}",
                    common.fmt_count(e["samples_per_s"]),
                    f"{e['ours_speedup']:.1f}x",
                    f"{e['frac_positive']:.4f}",
                    f"{e['frac_not_item']:.4f}",
                ]
            )
    click.echo(f"Negative sampling, one per training edge, device {dev}")
    click.echo(common.format_table(HEADER, rows))
    goals = []
    for r in results:
        click.echo(
            f"{r['graph']}: {r['source']}, U={r['users']} I={r['items']} E={r['edges']}; "
            f"ours built in {common.fmt_time(r['ours_build_s'])}"
        )
        pyg = r["contenders"].get("PyG structured_negative_sampling", {})
        if "ours_speedup" in pyg:
            goal = {
                "graph": r["graph"],
                "target": "ours samples/s / PyG structured_negative_sampling samples/s",
                "goal": 30.0,
                "measured": pyg["ours_speedup"],
                "met": pyg["ours_speedup"] >= 30.0,
            }
            goals.append(goal)
        ours = r["contenders"]["ours BPRSampler.negatives"]
        if ours["frac_positive"] != 0.0:  # pragma: no cover - would be a sampler bug
            notes.append(f"ours returned positives on {r['graph']}: {ours['frac_positive']}")
    for t in goals:
        verdict = "met" if t["met"] else "NOT met"
        click.echo(f"target {t['graph']}: ours vs PyG >= 30x: {t['measured']:.1f}x ({verdict})")
    for note in notes:
        click.echo(f"note: {note}")
    load_after = os.getloadavg()
    click.echo(
        f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        f"on {hw['logical_cpus']} logical CPUs"
    )
    common.write_json(
        json_path,
        {
            "benchmark": "sampler",
            "hardware": hw,
            "config": {
                "device": str(dev),
                "python_samples": python_samples,
                "min_run_time": min_run_time,
                "seed": seed,
            },
            "load_average": {"before": load_before, "after": load_after},
            "graphs": results,
            "targets": goals,
            "notes": notes,
        },
    )


if __name__ == "__main__":
    main()
