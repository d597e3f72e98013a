"""Peak memory and time of adjacency build, propagation, a training step and full evaluation.

Run from the repository root: ``python -m benchmarks.memory --help``. Each graph size runs
in its own subprocess (``python -m benchmarks.memory --one ...``) so that its peak resident
set (``ru_maxrss``) is its own.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import click
import numpy as np
import torch

from lightgcn_sparse import (
    BPRSampler,
    bpr_loss,
    evaluate_ranking,
    normalized_adjacency,
    propagate,
    user_items_from_pairs,
)
from lightgcn_sparse.propagation import Graph

from . import hardware, memory_probe, report
from .graphs import graph_shapes, powerlaw_bipartite
from .options import model_options, run_options

HELP = """Peak RSS and time of each stage of LightGCN training on big synthetic graphs.

For each --edges size, a child process (its own ru_maxrss) generates a power-law graph
(1M users / 200k items at 20M edges, scaled linearly for smaller sizes unless --users /
--items are given), holds out 1% of the edges, then measures: building the normalized
adjacency (and its prepared Graph, as the model keeps it); one forward propagation (on CPU
the first products of a Graph take its row-split choices in turn, timed; the choice is
settled after this stage); one full training step (propagation forward+backward over the
whole graph, BPR loss with lightgcn_sparse.bpr_loss on a BPRSampler batch, Adam
on the layer-0 embedding nn.Parameter) at batch 2048 and 65536; and evaluating all users
with held-out edges (chunked lightgcn_sparse.evaluate_ranking, train edges excluded).
Epoch time = ceil(train edges / batch) x step time.

Memory: "peak" of a stage is the kernel's peak resident set (VmHWM) during that stage
minus the resident set before it (VmHWM reset through /proc/self/clear_refs, Linux);
"ru_maxrss" is the child's getrusage peak resident set up to the end of that stage (kept
as a running max, since the VmHWM reset also resets it).
"""

STAGES = ("generate", "adjacency", "sampler", "forward", "step@2048", "step@65536", "evaluate")


#: Running max of ``ru_maxrss`` across stages: on Linux, resetting VmHWM through
#: /proc/self/clear_refs also resets the high-water mark that ``getrusage`` reports.
_MAXRSS = [0]


def maxrss_so_far() -> int:
    _MAXRSS[0] = max(_MAXRSS[0], memory_probe.max_rss_bytes())
    return _MAXRSS[0]


class Stage:
    """Times one stage and records its peak RSS delta and the running ``ru_maxrss``."""

    def __init__(self, name: str, log: dict[str, Any], device: torch.device) -> None:
        self.name, self.log, self.device = name, log, device
        self.hwm = False

    def __enter__(self) -> Stage:
        maxrss_so_far()  # fold the high-water mark in before it is reset below
        memory_probe.release_free_memory()
        self.rss0 = memory_probe.rss_bytes()
        self.hwm = self.rss0 is not None and memory_probe.reset_peak_rss()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.cuda0 = torch.cuda.memory_allocated(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        hardware.synchronize(self.device)
        entry = {"seconds": time.perf_counter() - self.t0, "ru_maxrss": maxrss_so_far()}
        peak = memory_probe.peak_rss_bytes() if self.hwm else None
        if peak is not None and self.rss0 is not None:
            entry["peak_rss_delta"] = max(0, peak - self.rss0)
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            entry["cuda_peak_delta"] = peak - self.cuda0
        self.log[self.name] = entry


def run_one(
    num_users: int,
    num_items: int,
    num_edges: int,
    dim: int,
    layers: int,
    device: torch.device,
    steps: int,
    seed: int,
    eval_k: int,
) -> dict[str, Any]:
    """All stages on one graph, in this process."""
    log: dict[str, Any] = {}
    gen = torch.Generator(device=device).manual_seed(seed)
    with Stage("generate", log, device):
        u, i = powerlaw_bipartite(num_users, num_items, num_edges, seed=seed)
        rng = np.random.default_rng(seed + 1)
        test = rng.random(u.size) < 0.01  # hold out 1% of the edges
        tr_u, tr_i = torch.from_numpy(u[~test]), torch.from_numpy(i[~test])
        te_u, te_i = torch.from_numpy(u[test]), torch.from_numpy(i[test])
        del u, i, test
    n = num_users + num_items
    with Stage("adjacency", log, device):
        adj = normalized_adjacency(tr_u, tr_i, num_users, num_items, device=device)
        graph = Graph(adj)  # prepared once, as the model does
    with Stage("sampler", log, device):
        sampler = BPRSampler.from_pairs(tr_u, tr_i, num_users, num_items, device)
        train = sampler.interactions
        truth = user_items_from_pairs(te_u, te_i, num_users, num_items, device)
    train_edges = int(tr_u.numel())
    del tr_u, tr_i, te_u, te_i
    emb = torch.nn.Parameter(0.1 * torch.randn(n, dim, generator=gen, device=device))
    opt = torch.optim.Adam([emb], lr=1e-3)
    with Stage("forward", log, device), torch.no_grad():
        out = propagate(graph, emb, layers)  # (N, d)
        del out
    graph.settle_split(emb.detach())  # the CPU row split: chosen before the steps are timed

    def step(batch: int) -> float:
        users, pos, neg = sampler.sample_users(batch, gen)
        out = propagate(graph, emb, layers)  # (N, d), differentiable w.r.t. emb
        p, q = pos + num_users, neg + num_users
        loss = bpr_loss(out[users], out[p], out[q], (emb[users], emb[p], emb[q]), reg=1e-4)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    step_times: dict[str, list[float]] = {}
    for batch in (2048, 65536):
        name = f"step@{batch}"
        with Stage(name, log, device):
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                step(batch)
                hardware.synchronize(device)
                times.append(time.perf_counter() - t0)
        step_times[name] = times
        # first step allocates Adam's state; report the median of the rest when there is one
        log[name]["step_s"] = float(np.median(times[1:] if len(times) > 1 else times))
        log[name]["epoch_steps"] = math.ceil(train_edges / batch)
        log[name]["epoch_s"] = log[name]["epoch_steps"] * log[name]["step_s"]
    with Stage("evaluate", log, device), torch.no_grad():
        out = propagate(graph, emb, layers)
        metrics = evaluate_ranking(
            out[:num_users], out[num_users:], truth, exclude=train, ks=(eval_k,)
        )
        del out
    log["evaluate"]["users"] = metrics["users"]
    log["evaluate"][f"recall@{eval_k}"] = metrics[f"recall@{eval_k}"]
    return {
        "users": num_users,
        "items": num_items,
        "edges": num_edges,
        "train_edges": train_edges,
        "test_edges": truth.nnz,
        "nodes": n,
        "nnz": adj._nnz(),
        "index_dtype": str(adj.col_indices().dtype),
        "dim": dim,
        "layers": layers,
        "steps": steps,
        "step_times": step_times,
        "stages": log,
        "ru_maxrss": maxrss_so_far(),
    }


def run_child(args: list[str], timeout: float | None) -> dict[str, Any]:
    """Run ``python -m benchmarks.memory --one ...`` and parse its last stdout line."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--one", *args]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"child exited {proc.returncode}: " + " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


HEADER = [
    "edges",
    "users",
    "items",
    "stage",
    "time",
    "peak RSS delta",
    "ru_maxrss so far",
    "epoch (ceil(E/b) steps)",
]
CUDA_HEADER = [*HEADER[:6], "CUDA peak delta", *HEADER[6:]]


def rows_of(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in STAGES:
        st = r["stages"][name]
        if name.startswith("step@"):
            shown = f"{report.fmt_time(st['step_s'])}/step"
            epoch = f"{report.fmt_time(st['epoch_s'])} ({st['epoch_steps']} steps)"
        else:
            shown, epoch = report.fmt_time(st["seconds"]), ""
        if name == "evaluate":
            shown += f" ({st['users']} users)"
        row = [
            report.fmt_count(r["edges"]),
            report.fmt_count(r["users"]),
            report.fmt_count(r["items"]),
            name,
            shown,
            report.fmt_bytes(st.get("peak_rss_delta")),
        ]
        if "cuda_peak_delta" in st:
            row.append(report.fmt_bytes(st["cuda_peak_delta"]))
        rows.append([*row, report.fmt_bytes(st["ru_maxrss"]), epoch])
    return rows


@click.command(help=HELP)
@run_options()
@click.option("--edges", type=int, multiple=True, default=(1_000_000, 5_000_000, 20_000_000),
              show_default=True, help="Edges of each graph (repeat the option).")
@click.option("--users", type=int, multiple=True, help="Users per graph (default E/20).")
@click.option("--items", type=int, multiple=True, help="Items per graph (default E/100).")
@model_options
@click.option("--steps", type=click.IntRange(1), default=3, show_default=True,
              help="Training steps per batch size (the first, which allocates Adam's state, "
              "is excluded from the step time when there are two or more).")
@click.option("--eval-k", type=click.IntRange(1), default=20, show_default=True)
@click.option("--timeout", type=float, default=None, help="Seconds allowed per child.")
@click.option("--one", is_flag=True, hidden=True, help="Child mode: run one graph in-process.")
def main(device, threads, seed, json_path, edges, users, items, dim, layers, steps, eval_k,
         timeout, one) -> None:  # fmt: skip
    shapes = graph_shapes(edges, users, items)
    for e, (nu, ni) in zip(edges, shapes):
        if e < 100 or e > 0.5 * nu * ni:
            raise click.BadParameter(
                f"need 100 <= edges <= users * items / 2. Got {e} edges, {nu} x {ni}.",
                param_hint="--edges",
            )
    if one:
        hardware.set_threads(threads)
        (e,), ((nu, ni),) = edges, shapes
        res = run_one(nu, ni, e, dim, layers, hardware.resolve_device(device), steps, seed,
                      eval_k)  # fmt: skip
        click.echo(json.dumps(res))
        return
    dev, hw = hardware.start(device, threads)
    results, rows, errors = [], [], []
    for e, (nu, ni) in zip(edges, shapes):
        click.echo(f"running {e} edges ({nu} users, {ni} items) in a child ...", err=True)
        args = [
            f"--device={device}",
            f"--edges={e}",
            f"--users={nu}",
            f"--items={ni}",
            f"--dim={dim}",
            f"--layers={layers}",
            f"--steps={steps}",
            f"--eval-k={eval_k}",
            f"--seed={seed}",
        ]
        if threads is not None:
            args.append(f"--threads={threads}")
        try:
            r = run_child(args, timeout)
        except subprocess.TimeoutExpired:
            r = {"error": f"child timed out after {timeout} s"}
        r.setdefault("edges", e)
        results.append(r)
        if "error" in r:
            errors.append(f"{e} edges: {r['error']}")
        else:
            rows += rows_of(r)
    click.echo(f"Memory and time per stage, d={dim}, K={layers}, float32, device {dev}")
    if rows:
        click.echo(report.format_table(CUDA_HEADER if dev.type == "cuda" else HEADER, rows))
    for r in results:
        if "error" not in r:
            ev = r["stages"]["evaluate"]
            click.echo(
                f"{report.fmt_count(r['edges'])} edges: N={r['nodes']} nnz={r['nnz']} "
                f"({r['index_dtype']}), train {r['train_edges']}, test {r['test_edges']}, "
                f"recall@{eval_k} {ev[f'recall@{eval_k}']:.4f} (untrained), child ru_maxrss "
                f"{report.fmt_bytes(r['ru_maxrss'])}"
            )
    for err in errors:
        click.echo(f"error: {err}")
    click.echo(hardware.finish(hw))
    config = {"device": device, "dim": dim, "layers": layers, "steps": steps,
              "eval_k": eval_k, "seed": seed}  # fmt: skip
    report.write_json(json_path, {"benchmark": "memory", "hardware": hw, "config": config,
                                  "graphs": results})  # fmt: skip
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
