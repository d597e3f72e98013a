"""Negative sampling: our exact sampler against PyG's and a plain Python rejection loop.

Run from the repository root: ``python -m benchmarks.sampler --help``.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import click
import torch

from lightgcn_sparse import BPRSampler

from . import hardware, report, timing
from .graphs import EdgeList, build_graphs
from .options import graph_options, min_run_time_option, run_options

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
    ok, _ = hardware.pyg_available()
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
    g: EdgeList,
    device: torch.device,
    min_run_time: float,
    python_samples: int,
    seed: int,
    notes: list[str],
) -> dict[str, Any]:
    name, source, u_np, i_np = g.name, g.source, g.users, g.items
    num_users, num_items = g.num_users, g.num_items
    edges = int(u_np.size)
    users = torch.from_numpy(u_np).to(device)
    items = torch.from_numpy(i_np).to(device)
    t0 = time.perf_counter()
    sampler = BPRSampler.from_pairs(users, items, num_users, num_items, device)
    hardware.synchronize(device)
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
        entry.update(timing.time_it(fn, min_run_time))
        entry["samples_per_s"] = n / entry["median_s"]
        res["contenders"][label] = entry

    record("ours BPRSampler.negatives", lambda: sampler.negatives(users, gen), edges, lambda t: t)

    pyg = pyg_sampler()
    if pyg is None:
        _, why = hardware.pyg_available()
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
@run_options()
@graph_options((1_000_000, 5_000_000), shapes=False)
@click.option("--python-samples", type=click.IntRange(0), default=200_000, show_default=True,
              help="Edges the Python loop samples for (0: skip it).")  # fmt: skip
@min_run_time_option
def main(device, threads, seed, json_path, edges, ml100k, real, python_samples,
         min_run_time) -> None:  # fmt: skip
    dev, hw = hardware.start(device, threads)
    edges = tuple(e for e in edges if e != 0)
    graphs = build_graphs(edges, (), (), ml100k, real, seed)
    if not graphs:
        raise click.UsageError("no graph to run: give --edges or --ml100k.")
    notes: list[str] = []
    results = []
    for g in graphs:
        click.echo(f"running {g.name}: {g.num_users} users, {g.num_items} items, "
                   f"{g.num_edges} edges ...", err=True)  # fmt: skip
        results.append(run_graph(g, dev, min_run_time, python_samples, seed, notes))
    rows = []
    for r in results:
        for label, e in r["contenders"].items():
            if "samples_per_s" not in e:
                rows.append([r["graph"], label, "skipped", "", "", "", "", ""])
                continue
            rows.append([r["graph"], label, report.fmt_count(e["samples_per_call"]),
                         f"{report.fmt_time(e['median_s'])} ± {report.fmt_time(e['iqr_s'])}",
                         report.fmt_count(e["samples_per_s"]), f"{e['ours_speedup']:.1f}x",
                         f"{e['frac_positive']:.4f}", f"{e['frac_not_item']:.4f}"])  # fmt: skip
    click.echo(f"Negative sampling, one per training edge, device {dev}")
    click.echo(report.format_table(HEADER, rows))
    goals = []
    for r in results:
        click.echo(
            f"{r['graph']}: {r['source']}, U={r['users']} I={r['items']} E={r['edges']}; "
            f"ours built in {report.fmt_time(r['ours_build_s'])}"
        )
        pyg = r["contenders"].get("PyG structured_negative_sampling", {})
        if "ours_speedup" in pyg:
            what = "ours samples/s / PyG structured_negative_sampling samples/s"
            goals.append(report.target(r["graph"], what, 30.0, pyg["ours_speedup"]))
        ours = r["contenders"]["ours BPRSampler.negatives"]
        if ours["frac_positive"] != 0.0:  # pragma: no cover - would be a sampler bug
            notes.append(f"ours returned positives on {r['graph']}: {ours['frac_positive']}")
    report.echo_targets(goals)
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(hardware.finish(hw))
    config = {"device": str(dev), "python_samples": python_samples,
              "min_run_time": min_run_time, "seed": seed}  # fmt: skip
    report.write_json(json_path, {"benchmark": "sampler", "hardware": hw, "config": config,
                                  "graphs": results, "targets": goals, "notes": notes})  # fmt: skip


if __name__ == "__main__":
    main()
