"""How far cutting the rest of a training step can take a propagation dtype: each dtype's
training step against its floor, interleaved in one process.

\b
    python -m benchmarks.floor [--dataset gowalla] [--data-dir DIR] [--device cpu|cuda]
        [--propagation-dtype float32 --propagation-dtype bfloat16] [--batch-size B]
        [--sampling users|interactions] [--rounds 12] [--steps 10] [--json out.json]

The floor of a step is what no change outside the sparse kernels can remove: the step's
sparse products, on the model's own graph (the same kernel, row split and shapes as its
training step: on the batch-rows path K - 1 full products and the batch rows' product
forward, K full products backward; on the full path K each way, with the layer sums), the
(N, d) casts its dtype needs, and Adam on the float32 master weights. It leaves out all the
rest of the step: the batch's unique rows, building the batch rows' CSR (prebuilt here),
the forward's sums over those rows, the BPR loss, autograd, Python.

Before anything is timed, each floor is checked to compute the step's propagation: its
gradient, plus the layer-0 term, equals the autograd gradient of the propagation the step
calls, bit for bit, for the same incoming gradient; and on the batch-rows path its rows'
product equals ``Graph.rows_matmul``.

The real step is the eager one (``EagerStep``), on CUDA too, where training may replay a
CUDA graph instead (``cuda_graph``). On CPU, real steps run before the timing until the row
split of each dtype is chosen (in place, as in training).

Rounds alternate the dtypes and, within each, the step and its floor, over the same
batches, so that drift of the machine (other tenants, memory bandwidth) falls on all
alike; the figures are medians over rounds. The floor's ratio between two dtypes bounds
what any cut in the rest of the step can make of the step's ratio.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import click
import torch

from lightgcn_sparse.config import SAMPLING, preset
from lightgcn_sparse.model import LightGCN
from lightgcn_sparse.propagation import (
    DTYPES,
    _from_rows,
    _narrow,
    _propagate_forward,
    _PropagateRows,
    _SymmetricPropagate,
    layer_weights,
    propagate,
)
from lightgcn_sparse.sampling import BPRSampler
from lightgcn_sparse.steps import EagerStep, make_optimizer
from lightgcn_sparse.trainer import SingleProcess
from lightgcn_sparse.user_items import user_items_from_csr

from . import hardware, report
from .options import run_options
from .train import loaded, split_settled

#: Real steps at most before the timing, while the CPU row split is chosen in place.
SETTLE_STEPS = 100
HEADER = ["dataset", "device", "dtype", "path", "step", "floor", "rest (step - floor)",
          "step ratio", "floor ratio"]  # fmt: skip


@dataclass
class Lever:
    """One dtype's model, optimizer and real step, and its floor's per-batch inputs."""

    dtype: str
    model: LightGCN
    optimizer: torch.optim.Optimizer
    step: EagerStep
    rows_path: bool
    floor_inputs: list[tuple] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=lambda: {"step": [], "floor": []})


def _weights(model: LightGCN) -> list[float]:
    return layer_weights(model.config.num_layers, model.config.alpha)


def _setting(lever: Lever) -> tuple[Any, torch.dtype, str, list[float]]:
    cfg = lever.model.config
    return lever.model.graph_, DTYPES[cfg.propagation_dtype], cfg.kernel, _weights(lever.model)


def floor_forward(lever: Lever, x: torch.Tensor, inputs: tuple):
    """The forward products of the step's propagation of ``x`` (and the casts): on the
    batch-rows path the last layer at the batch's rows, in the product dtype, and the scale
    it is divided by (float16; else None); on the full path the layer sum."""
    graph, dtype, kernel, weights = _setting(lever)
    if not lever.rows_path:
        return _propagate_forward(graph, x, weights, kernel, dtype), None
    at, sub, _ = inputs
    h, scale = _narrow(graph, x, dtype)
    for k in range(len(weights) - 2):  # layers 1..K-1 in full, into the step's buffers
        h = graph.matmul(h, kernel, out=graph.scratch(f"product{k % 2}", tuple(x.shape), dtype))
    return graph.rows_matmul(h, at, kernel, sub=sub), scale  # the last layer, at the rows


def floor_backward(lever: Lever, inputs: tuple) -> torch.Tensor:
    """The backward products (and casts) of the step's propagation, from the incoming
    gradient in ``inputs``: the (N, d) gradient of the layer-0 embeddings, less the
    layer-0 term."""
    graph, dtype, kernel, weights = _setting(lever)
    if lever.rows_path:
        at, _, g = inputs
        return _from_rows(graph, at, g, weights, kernel, dtype)
    (g,) = inputs
    return _propagate_forward(graph, g, weights, kernel, dtype)


def floor_step(lever: Lever, inputs: tuple) -> torch.Tensor:
    """One floor step: :func:`floor_forward`, :func:`floor_backward`, then Adam. Returns
    the (N, d) gradient it handed to Adam."""
    floor_forward(lever, lever.model.embedding_.detach(), inputs)
    grad = floor_backward(lever, inputs)
    lever.model.embedding_.grad = grad
    lever.optimizer.step()
    return grad


def check_floor(lever: Lever, inputs: tuple) -> None:
    """Raise if the floor does not compute the step's propagation, bit for bit: its
    forward against :func:`propagate` (on the batch-rows path with the last layer's weight
    alone, at the rows), its gradient plus the layer-0 term against autograd through the
    propagation the step calls."""
    graph, dtype, kernel, weights = _setting(lever)
    cfg = lever.model.config
    x = lever.model.embedding_.detach().clone().requires_grad_(True)
    mine, scale = floor_forward(lever, x.detach(), inputs)
    if lever.rows_path:
        at, _, g = inputs
        last_only = [0.0] * (len(weights) - 1) + [1.0]  # 0 x + ... + 1 h_K: h_K exactly
        ref = propagate(graph, x.detach(), cfg.num_layers, last_only, kernel=kernel,
                        dtype=dtype)[at]  # fmt: skip
        mine = mine.to(x.dtype) if scale is None else mine.to(x.dtype) * scale
        out, x_rows = _PropagateRows.apply(x, at, graph, weights, kernel, dtype)
        torch.autograd.backward([out, x_rows], [g, torch.zeros_like(g)])
        grad = floor_backward(lever, inputs).index_add_(0, at, g * weights[0])
    else:
        (g,) = inputs
        ref = propagate(graph, x.detach(), cfg.num_layers, weights, kernel=kernel, dtype=dtype)
        _SymmetricPropagate.apply(x, graph, weights, kernel, dtype).backward(g)
        grad = floor_backward(lever, inputs)
    if not torch.equal(mine, ref):
        raise AssertionError(f"{lever.dtype}: the floor's forward differs from the propagation's")
    if not torch.equal(grad, x.grad):
        raise AssertionError(
            f"{lever.dtype}: the floor's gradient differs from the propagation's (max "
            f"|diff| {float((grad - x.grad).abs().max()):.3g})"
        )


def prepare(split: Any, cfg: Any, batches: list[tuple], seed: int) -> Lever:
    """A fitted model of ``cfg`` (one step, to build the graph and Adam's state), its real
    step, and its floor's inputs per batch: the unique rows, their prebuilt CSR and a
    random incoming gradient (its values do not change a product's cost)."""
    model = LightGCN(cfg.replace(epochs=1, batches_per_epoch=1))
    model.fit(split.train.to_csr(), show_progress=False)
    optimizer = make_optimizer(model.parameters(), cfg.learning_rate)
    step = EagerStep(model, SingleProcess(), optimizer)
    lever = Lever(cfg.propagation_dtype, model, optimizer, step, model._batch_rows_only())
    gen = torch.Generator().manual_seed(seed)
    graph, dtype, dev = model.graph_, DTYPES[cfg.propagation_dtype], model.device
    for users, pos, neg in batches:
        if lever.rows_path:
            at = torch.unique(torch.cat([users, pos + model.trained_users_,
                                         neg + model.trained_users_]))  # fmt: skip
            g = torch.randn((at.numel(), cfg.embedding_dim), generator=gen).to(dev)
            lever.floor_inputs.append((at, graph.rows_csr(at, dtype), g))
        else:
            g = torch.randn(tuple(model.embedding_.shape), generator=gen).to(dev)
            lever.floor_inputs.append((g,))
    check_floor(lever, lever.floor_inputs[0])
    for i in range(SETTLE_STEPS):  # the CPU row split is chosen in real steps
        if split_settled(model):
            break
        lever.step(*batches[i % len(batches)])
    else:
        raise click.ClickException(f"{cfg.propagation_dtype}: the row split was not chosen "
                                   f"after {SETTLE_STEPS} steps")  # fmt: skip
    return lever


def _block(run: Callable[[int], Any], first: int, count: int, device: torch.device) -> float:
    """Seconds per call of ``run(i)`` for i in ``first .. first + count - 1``."""
    hardware.synchronize(device)
    start = time.perf_counter()
    for i in range(first, first + count):
        run(i)
    hardware.synchronize(device)
    return (time.perf_counter() - start) / count


def time_levers(levers: list[Lever], batches: list[tuple], rounds: int, steps: int,
                device: torch.device) -> None:  # fmt: skip
    """Fill each lever's ``times``: per round, ``steps`` real steps then ``steps`` floor
    steps per dtype, each round on the next ``steps`` batches (cycling)."""
    n = len(batches)
    runs = []
    for lever in levers:
        runs.append((lever, "step", lambda i, lv=lever: lv.step(*batches[i % n])))
        runs.append((lever, "floor", lambda i, lv=lever: floor_step(lv, lv.floor_inputs[i % n])))
    for _, _, run in runs:  # warm up: scratch buffers, the row split's timing, page faults
        _block(run, 0, 2, device)
    for r in range(rounds):
        for lever, kind, run in runs:
            lever.times[kind].append(_block(run, r * steps, steps, device))


def rows_of(name: str, dev: torch.device, levers: list[Lever]) -> tuple[list, list]:
    """Table rows and JSON entries; ratios are against the first dtype."""
    med = [{k: statistics.median(v) for k, v in lv.times.items()} for lv in levers]
    rows, entries = [], []
    for lever, m in zip(levers, med):
        step_ratio, floor_ratio = med[0]["step"] / m["step"], med[0]["floor"] / m["floor"]
        rows.append([name, str(dev), lever.dtype, "batch rows" if lever.rows_path else "full",
                     report.fmt_time(m["step"]), report.fmt_time(m["floor"]),
                     report.fmt_time(m["step"] - m["floor"]), f"{step_ratio:.2f}x",
                     f"{floor_ratio:.2f}x"])  # fmt: skip
        split = lever.model.graph_._split  # the CPU row split each setting took
        entries.append({"propagation_dtype": lever.dtype, "rows_path": lever.rows_path,
                        "step_s": m["step"], "floor_s": m["floor"], "step_ratio": step_ratio,
                        "floor_ratio": floor_ratio, "rounds": lever.times,
                        "row_split": {str(k): v for k, v in split.items()}})  # fmt: skip
    return rows, entries


@click.command(help=__doc__)
@run_options(seed=2020)
@click.option("--dataset", "datasets", multiple=True, default=("gowalla",), show_default=True,
              help="A catalogue name or a path (repeat the option).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding named datasets (<dir>/<name>), looked at first.")
@click.option("--propagation-dtype", "dtypes", type=click.Choice(list(DTYPES)), multiple=True,
              default=("float32", "bfloat16"), show_default=True,
              help="Repeat for each; ratios are against the first.")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Override the recbole preset's (2048).")
@click.option("--sampling", type=click.Choice(SAMPLING), default=None,
              help="Override the preset's sampling.")
@click.option("--rounds", type=click.IntRange(1), default=12, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=10, show_default=True,
              help="Steps per round and kind.")
def main(device, threads, seed, json_path, datasets, data_dir, dtypes, batch_size, sampling,
         rounds, steps) -> None:  # fmt: skip
    dev, hw = hardware.start(device, threads)
    changes: dict[str, Any] = {"device": str(dev), "seed": seed}
    if batch_size is not None:
        changes["batch_size"] = batch_size
    if sampling is not None:
        changes["sampling"] = sampling
    base = preset("recbole", **changes)
    table, results, notes = [], [], []
    for name, data, split, _ in loaded(datasets, data_dir, seed, notes):
        sampler = BPRSampler(user_items_from_csr(split.train.to_csr()).to(dev))
        count = rounds * steps
        (users, pos, neg), sizes = sampler.epoch_triples(
            base.sampling, base.batch_size, count, torch.Generator(dev).manual_seed(seed)
        )
        batches = list(zip(users.split(sizes), pos.split(sizes), neg.split(sizes)))
        click.echo(f"{name}: {len(batches)} batches of {base.batch_size}; checking and timing "
                   f"{', '.join(dict.fromkeys(dtypes))} ...", err=True)  # fmt: skip
        levers = [prepare(split, base.replace(propagation_dtype=d), batches, seed)
                  for d in dict.fromkeys(dtypes)]  # fmt: skip
        time_levers(levers, batches, rounds, steps, dev)
        rows, entries = rows_of(name, dev, levers)
        table += rows
        results.append({"dataset": name, "users": data.num_users, "items": data.num_items,
                        "batches": len(batches), "levers": entries})  # fmt: skip
    click.echo(f"Training step against its floor (products, casts, Adam; see --help), recbole "
               f"preset (d {base.embedding_dim}, K {base.num_layers}, batch {base.batch_size}"
               f", {base.sampling} sampling), medians of {rounds} interleaved rounds of "
               f"{steps} steps each")  # fmt: skip
    click.echo(report.format_table(HEADER, table))
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(hardware.finish(hw))
    report.write_json(json_path, {"benchmark": "floor", "hardware": hw,
                                  "config": {"config": base.to_dict(), "rounds": rounds,
                                             "steps": steps},
                                  "datasets": results, "notes": notes})  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    main()
