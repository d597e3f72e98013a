"""Training benchmark: what a step costs against what its propagation costs, per dataset, per
lever (propagation dtype, node order); and the ml-100k quality run, optionally beside RecBole.

\b
    python -m benchmarks.train [--dataset ml-100k --dataset gowalla] [--data-dir DIR]
        [--device cpu|cuda] [--propagation-dtype float32 ...] [--node-order none ...]
        [--timing-epochs 3] [--profile-steps 5] [--quality/--no-quality] [--epochs 100]
        [--compare-recbole] [--json out.json]

Per dataset, device and lever (each --propagation-dtype x each --node-order):

1. seconds per epoch: ``--timing-epochs`` epochs of pure training (no validation), median;
   steps per second from it (the first epoch's first steps also time the CPU row split's
   choices, in place);
2. the share of a step spent in propagation: one torch.profiler profile of
   ``--profile-steps`` steps (in a separate one-epoch fit, after unprofiled ones: at least 3,
   and until the CPU row split is chosen): time
   inside the propagation autograd function, forward plus backward (``_PropagateRows``,
   the batch-rows propagation of CPU steps, or ``_SymmetricPropagate``), over the wall
   time of those steps; and from the same profile, per step, the time in the sparse
   products inside the propagation, the rest of the propagation, the optimizer, and the
   rest of the wall time (the second table: what a narrower dtype can and cannot shrink);
3. step / propagation: the step time of 1. over one full propagation forward+backward
   timed apart (Timer.blocked_autorange) on the same prepared graph.

Data: a name of the package's catalogue (looked for in --data-dir first, then the usual
places: cache, recbole's ml-100k copy, download) or a path. Datasets that ship their split
(Gowalla, the LightGCN paper's train.txt/test.txt) train on its train part; others are
split per user at random 80/10/10 (RecBole's protocol) and get the quality run: a full fit
with early stopping on validation NDCG@20, then test metrics (full ranking, train and valid
items excluded), with the popularity baseline beside.

``--compare-recbole`` writes that split as RecBole atomic files and runs RecBole's own
LightGCN on it with the same hyperparameters, inside a temporary working directory (RecBole
writes ./log, ./log_tensorboard and ./saved), when recbole and its dependencies import
(never a dependency of this project; skipped with a note otherwise).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import click
import numpy as np
import torch

from lightgcn_sparse.adjacency import NODE_ORDERS
from lightgcn_sparse.config import PRESETS, SAMPLING, Config, preset
from lightgcn_sparse.data import (
    CATALOG,
    DatasetNotFoundError,
    Interactions,
    Split,
    load_dataset,
    split_interactions,
)
from lightgcn_sparse.experiment import (
    PROTOCOLS,
    DataSpec,
    evaluate_test,
    popularity_metrics,
    train,
)
from lightgcn_sparse.graph import SPLIT_TRIAL_ROUNDS
from lightgcn_sparse.model import LightGCN
from lightgcn_sparse.propagation import DTYPES, resolve_kernel
from lightgcn_sparse.trainer import Callback

from . import hardware, report, timing
from .options import min_run_time_option, run_options

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@10", "map@10")
#: The propagation's autograd functions: the full one (CUDA steps, LightGCN++) and the
#: batch-rows one of CPU steps (propagation.propagate_rows).
PROPAGATION_EVENTS = ("_SymmetricPropagate", "_SymmetricPropagateBackward", "_PropagateRows",
                      "_PropagateRowsBackward")  # fmt: skip
#: The top-level op of one sparse product, per kernel (``Graph.matmul``, ``rows_matmul``).
PRODUCT_OPS = ("aten::embedding_bag", "aten::_sparse_mm")
#: Unprofiled steps before the profile at least (Adam's state, page faults); more while the
#: CPU row split is still timed in place (:func:`warmup_steps`).
WARMUP_STEPS = 3
#: Steps the profile may wait past :func:`warmup_steps` for the row split to be chosen.
PROFILE_SLACK = 5


# ------------------------------------------------------------------------------ data
def load(name: str, data_dir: Optional[str], seed: int) -> tuple[Interactions, Split, str]:
    """A dataset and its split: the shipped one (train/test) if any, else random 80/10/10."""
    table = None
    if data_dir is not None and name in CATALOG:
        with contextlib.suppress(DatasetNotFoundError):
            table = load_dataset(name, data_dir, progress=False)
    if table is None:
        table = load_dataset(name, progress=False)
    if table.parts is not None:
        return table, split_interactions(table, "given", valid_fraction=0.0), "given"
    return table, split_interactions(table, "random", seed=seed), "random"


def loaded(
    names: Iterable[str], data_dir: Optional[str], seed: int, notes: list[str]
) -> Iterator[tuple[str, Interactions, Split, str]]:
    """``(name, data, split, how)`` of each distinct name that loads (:func:`load`); a note
    for each that does not."""
    for name in dict.fromkeys(names):
        try:
            data, split, how = load(name, data_dir, seed)
        except (DatasetNotFoundError, OSError, ValueError) as err:
            notes.append(f"{name}: not loaded ({type(err).__name__}: {err}); skipped.")
            continue
        yield name, data, split, how


# ------------------------------------------------------------------------------ timing
class _StepCounter(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, trainer: Any, epoch: int, step: int) -> None:
        self.steps += 1


def warmup_steps(model: LightGCN) -> int:
    """Unprofiled steps before a profile of ``model``'s configuration: :data:`WARMUP_STEPS`,
    or enough for the CPU row split's in-place trial (``3 (1 + SPLIT_TRIAL_ROUNDS)``
    products; a step makes ``2K - 1`` through ``Graph.matmul`` on the batch-rows path,
    ``2K`` on the full one) and two more."""
    k = model.config.num_layers
    per_step = max(2 * k - 1 if model._batch_rows_only() else 2 * k, 1)
    return max(WARMUP_STEPS, 2 + math.ceil(3 * (1 + SPLIT_TRIAL_ROUNDS) / per_step))


def split_settled(model: LightGCN) -> bool:
    """Whether no product of ``model``'s steps is still a row-split trial's."""
    cfg, dev = model.config, model.device
    if dev.type != "cpu" or resolve_kernel(cfg.kernel, dev) != "embedding_bag":
        return True
    return model.graph_.split_chosen(DTYPES[cfg.propagation_dtype], cfg.embedding_dim)


class _StepProfile(Callback):
    """Profiles ``count`` steps, from the first at or after step ``first`` at which
    ``ready(model)`` holds (default: at once); their wall time too."""

    def __init__(
        self, first: int, count: int, device: torch.device,
        ready: Optional[Callable[[Any], bool]] = None,
    ) -> None:  # fmt: skip
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        self.profiler = profile(activities=acts)
        self.first, self.count, self.device = first, count, device
        self.ready = ready or (lambda model: True)
        self.started: Optional[int] = None  # the step after which profiling started
        self.done = False
        self.wall = 0.0

    def on_step_end(self, trainer: Any, epoch: int, step: int) -> None:
        if self.started is None:
            if step >= self.first - 1 and self.ready(trainer.model):
                hardware.synchronize(self.device)  # the profiled steps start after this one
                self.profiler.start()
                self.wall = time.perf_counter()
                self.started = step
        elif not self.done and step == self.started + self.count:
            hardware.synchronize(self.device)
            self.wall = time.perf_counter() - self.wall
            self.profiler.stop()
            self.done = True

    def _seconds(self, events) -> float:
        attr = "device_time_total" if self.device.type == "cuda" else "cpu_time_total"
        return sum(getattr(e, attr) for e in events) / 1e6

    def propagation_seconds(self) -> float:
        """Time inside the propagation's forward and backward (device time on CUDA)."""
        return self._seconds(e for e in self.profiler.events() if e.name in PROPAGATION_EVENTS)

    def breakdown(self) -> dict[str, float]:
        """Seconds per profiled step: the sparse products inside the propagation (full and
        batch-rows), the rest of the propagation (narrowing and widening casts, row gathers
        and sums, the batch-rows CSR), the optimizer (``Optimizer.*`` ranges: step and
        zero_grad), and the rest of the wall time (loss, sampling, autograd, Python)."""
        events = self.profiler.events()
        propagation = self.propagation_seconds()
        products = self._seconds(e for e in events if e.name in PRODUCT_OPS and _inside(e))
        optimizer = self._seconds(e for e in events if e.name.startswith("Optimizer."))
        parts = {"products": products, "propagation_other": propagation - products,
                 "optimizer": optimizer}  # fmt: skip
        parts["other"] = self.wall - sum(parts.values())
        return {k: v / self.count for k, v in parts.items()}


def _inside(event: Any) -> bool:
    """Whether a profiler event ran inside one of the propagation's autograd functions."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in PROPAGATION_EVENTS:
            return True
        parent = parent.cpu_parent
    return False


def time_lever(
    split: Split, cfg: Config, timing_epochs: int, profile_steps: int, min_run_time: float
) -> dict[str, Any]:
    """Epoch time, propagation share and step / propagation for one configuration."""
    train_csr = split.train.to_csr()
    counter = _StepCounter()
    model = LightGCN(cfg.replace(epochs=timing_epochs))
    model.fit(train_csr, show_progress=False, callback=counter)
    epochs = [t["seconds"] for t in model.timings_]
    epoch_s = statistics.median(epochs)
    steps = counter.steps // timing_epochs

    x = model.embedding_.detach().clone().requires_grad_(True)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).to(x.device)

    def fwd_bwd() -> None:
        x.grad = None
        model.propagate(x).backward(grad)

    prop = timing.time_it(fwd_bwd, min_run_time)

    warmup = warmup_steps(model)
    prof = _StepProfile(warmup + 1, profile_steps, model.device, ready=split_settled)
    short = cfg.replace(epochs=1, batches_per_epoch=warmup + profile_steps + PROFILE_SLACK,
                        cuda_graph="off")  # fmt: skip
    LightGCN(short).fit(train_csr, show_progress=False, callback=prof)
    if not prof.done:
        raise click.ClickException(f"the profile of {cfg.propagation_dtype} did not complete: "
                                   "the row split was still being timed")  # fmt: skip
    share = prof.propagation_seconds() / prof.wall
    step_s = epoch_s / steps
    return {
        "propagation_dtype": cfg.propagation_dtype,
        "node_order": cfg.node_order,
        "epoch_seconds": epochs,
        "epoch_s": epoch_s,
        "steps_per_epoch": steps,
        "steps_per_s": steps / epoch_s,
        "step_s": step_s,
        "propagation_fwd_bwd_s": prop["median_s"],
        "propagation_fwd_bwd_iqr_s": prop["iqr_s"],
        "step_over_propagation": step_s / prop["median_s"],
        "profiled_steps": profile_steps,
        "profiled_step_s": prof.wall / profile_steps,
        "propagation_share": share,
        "profiled_breakdown_s": prof.breakdown(),
    }


# ------------------------------------------------------------------------------ quality
@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run the block with ``path`` as the working directory (for tools that write to it)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def write_recbole_split(split: Split, folder: Path, name: str = "lgs") -> Path:
    """The split as RecBole atomic files ``<name>.{train,valid,test}.inter``."""
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        d: Interactions = getattr(split, part)
        lines = ["user_id:token\titem_id:token\ttimestamp:float"]
        ts = d.timestamps if d.timestamps is not None else np.zeros(len(d.users), np.int64)
        lines += [f"{u}\t{i}\t{t}" for u, i, t in zip(d.users, d.items, ts)]
        (out / f"{name}.{part}.inter").write_text("\n".join(lines) + "\n")
    return out


def run_recbole(split: Split, cfg: Config, epochs: int, device: torch.device) -> dict[str, Any]:
    """RecBole 1.2.1's LightGCN on exactly ``split``, in a temporary working directory;
    raises ImportError without recbole."""
    from recbole.quick_start import run_recbole as _run  # optional, never a dependency

    with tempfile.TemporaryDirectory() as tmp, working_directory(Path(tmp)):
        write_recbole_split(split, Path(tmp))
        config = {
            "data_path": tmp,
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "embedding_size": cfg.embedding_dim,
            "n_layers": cfg.num_layers,
            "reg_weight": cfg.reg,
            "learning_rate": cfg.learning_rate,
            "train_batch_size": cfg.batch_size,
            "epochs": epochs,
            "stopping_step": cfg.patience or epochs,
            "valid_metric": cfg.metric.replace("ndcg", "NDCG").replace("recall", "Recall"),
            "metrics": ["Recall", "NDCG", "Precision", "MAP", "Hit"],
            "topk": [10, 20],
            "eval_args": {"mode": "full", "order": "RO", "split": None, "group_by": "user"},
            "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
            "seed": cfg.seed,
            "use_gpu": device.type == "cuda",
            "show_progress": False,
            "checkpoint_dir": str(Path(tmp) / "saved"),
        }
        start = time.perf_counter()
        # RecBole 1.2.1 reloads the checkpoint it just wrote (into our temporary folder) with
        # torch.load's old pickle default, refused by torch >= 2.6 unless asked for here.
        saved_env = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
        try:
            result = _run(model="LightGCN", dataset="lgs", config_dict=config)
        finally:
            if saved_env is None:
                os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
            else:
                os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = saved_env
        seconds = time.perf_counter() - start
    test = {k.lower(): float(v) for k, v in result["test_result"].items()}
    return {"test": test, "seconds": seconds}


def quality(
    name: str, data: Interactions, split: Split, cfg: Config, epoch_s: float,
    compare_recbole: bool, notes: list[str],
) -> tuple[dict[str, Any], list[list[str]]]:  # fmt: skip
    """The full run with early stopping, test metrics, popularity (and RecBole) beside."""
    spec = DataSpec(name, split="random", split_seed=cfg.seed)
    start = time.perf_counter()
    model, _, _ = train(spec, cfg, show_progress=False, data=(data, split))
    fit_s = time.perf_counter() - start
    ours = evaluate_test(model, split, (10, 20))
    pop = popularity_metrics(split, (10, 20), cfg.device)
    out: dict[str, Any] = {"dataset": name, "config": cfg.to_dict(), "fit_seconds": fit_s,
                           "best_epoch": model.best_epoch_, "epochs_run": len(model.history_),
                           "lightgcn_sparse": ours, "popularity": pop}  # fmt: skip
    rows = [[name, "lightgcn-sparse", f"{epoch_s:.3f}", f"{fit_s:.1f}",
             f"{model.best_epoch_}/{len(model.history_)}"] + [f"{ours[k]:.4f}" for k in KEYS],
            [name, "popularity", "-", "-", "-"] + [f"{pop[k]:.4f}" for k in KEYS]]  # fmt: skip
    if compare_recbole:
        try:
            recbole = run_recbole(split, cfg, cfg.epochs, torch.device(cfg.device))
        except ImportError as err:
            notes.append(f"recbole with its dependencies is not importable ({err}); skipped.")
        except Exception as err:  # an incompatible recbole/scipy/numpy combination, say
            notes.append(f"the RecBole run failed ({type(err).__name__}: {err}); skipped.")
        else:
            t = recbole["test"]
            rows.append([name, "RecBole LightGCN", "-", f"{recbole['seconds']:.1f}", "-"]
                        + [f"{t.get(k, float('nan')):.4f}" for k in KEYS])  # fmt: skip
            out["recbole"] = recbole
    return out, rows


def curve(name: str, data: Interactions, cfg: Config, protocol: str) -> tuple[dict, list]:
    """Train under ``protocol`` and keep the held-out Recall@20 / NDCG@20 every
    ``cfg.eval_every`` epochs with the seconds so far: test for the paper protocol (best
    point kept), validation for the honest one (test once, at the kept epoch)."""
    spec = DataSpec(name, protocol=protocol)
    split = spec.split_of(data)
    seconds: list[float] = []
    model, _, _ = train(spec, cfg, show_progress=False, data=(data, split),
                        callback=lambda record: seconds.append(time.perf_counter()))  # fmt: skip
    start = seconds[0] - model.timings_[0]["seconds"]
    points = [{"epoch": r["epoch"], "seconds": t - start, "recall@20": r["recall@20"],
               "ndcg@20": r["ndcg@20"]}
              for r, t in zip(model.history_, seconds) if "recall@20" in r]  # fmt: skip
    held = "test" if protocol == "paper" else "validation"
    rows = [[name, protocol, held, str(q["epoch"]), f"{q['seconds']:.0f}", f"{q['recall@20']:.4f}",
             f"{q['ndcg@20']:.4f}"] for q in points]  # fmt: skip
    final = evaluate_test(model, split, (20,))
    rows.append([name, protocol, f"test, epoch {model.best_epoch_} kept", "", "",
                 f"{final['recall@20']:.4f}", f"{final['ndcg@20']:.4f}"])  # fmt: skip
    return {"dataset": name, "protocol": protocol, "points": points, "best_epoch":
            model.best_epoch_, "test": final, "config": cfg.to_dict()}, rows


# ------------------------------------------------------------------------------ CLI
#: Protocols with one training run to draw a curve of ("refit" trains twice).
CURVE_PROTOCOLS = tuple(p for p in PROTOCOLS if p != "refit")
TIMING_HEADER = ["dataset", "device", "dtype", "node order", "s/epoch", "steps/epoch",
                 "steps/s", "step", "propagation fwd+bwd", "step / propagation",
                 "propagation share (profile)"]  # fmt: skip
BREAKDOWN_HEADER = ["dataset", "device", "dtype", "node order", "step (profiled)", "products",
                    "propagation, other", "optimizer", "other", "products share"]  # fmt: skip
BREAKDOWN_NOTE = {
    "cpu": "sparse products inside the propagation (full and batch-rows); the rest of the "
    "propagation (casts, row gathers and sums, the batch-rows CSR); Optimizer.step and "
    "zero_grad; other = wall time less those (loss, autograd, Python)",
    "cuda": "device time of the products, of the rest of the propagation and of the optimizer "
    "(kernels overlap the host, so other = wall less those is approximate)",
}
QUALITY_HEADER = ["dataset", "model", "s/epoch", "fit s", "best/ran", *KEYS]
CURVE_HEADER = ["dataset", "protocol", "held-out", "epoch", "seconds", "Recall@20", "NDCG@20"]


def timing_row(name: str, dev: torch.device, r: dict[str, Any]) -> list[str]:
    return [name, str(dev), r["propagation_dtype"], r["node_order"], f"{r['epoch_s']:.2f}",
            str(r["steps_per_epoch"]), f"{r['steps_per_s']:.1f}", report.fmt_time(r["step_s"]),
            report.fmt_time(r["propagation_fwd_bwd_s"]), f"{r['step_over_propagation']:.2f}",
            f"{100 * r['propagation_share']:.0f}%"]  # fmt: skip


def breakdown_row(name: str, dev: torch.device, r: dict[str, Any]) -> list[str]:
    parts = r["profiled_breakdown_s"]
    return [name, str(dev), r["propagation_dtype"], r["node_order"],
            report.fmt_time(r["profiled_step_s"])] + [
        report.fmt_time(parts[k]) for k in ("products", "propagation_other", "optimizer", "other")
    ] + [f"{100 * parts['products'] / r['profiled_step_s']:.0f}%"]  # fmt: skip


@click.command(help=__doc__)
@run_options(seed=2020)
@click.option("--dataset", "datasets", multiple=True, default=("ml-100k", "gowalla"),
              show_default=True, help="A catalogue name or a path (repeat the option).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding named datasets (<dir>/<name>), looked at first.")
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default="recbole",
              show_default=True, help="Reference config: RecBole's settings.")
@click.option("--propagation-dtype", "dtypes", type=click.Choice(list(DTYPES)), multiple=True,
              default=("float32",), show_default=True, help="Repeat to time each.")
@click.option("--node-order", "orders", type=click.Choice(NODE_ORDERS), multiple=True,
              default=("none",), show_default=True, help="Repeat to time each.")
@click.option("--learning-rate", type=float, default=None, help="Override the preset's.")
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--timing-epochs", type=click.IntRange(1), default=3, show_default=True)
@click.option("--profile-steps", type=click.IntRange(1), default=5, show_default=True)
@min_run_time_option
@click.option("--quality/--no-quality", "quality_run", default=True, show_default=True,
              help="The full run with test metrics, on datasets split at random.")
@click.option("--epochs", type=click.IntRange(1), default=100, show_default=True,
              help="Epochs of the quality run (early stopping may end it sooner).")
@click.option("--compare-recbole", is_flag=True, help="Also run RecBole's LightGCN.")
@click.option("--protocol", type=click.Choice(CURVE_PROTOCOLS), default=None,
              help="Also train each dataset for --epochs under this protocol and print the "
              "metric curve (epoch, seconds, Recall@20, NDCG@20) every --eval-every epochs: "
              "'paper' evaluates test and keeps its best point, 'honest' validation (for "
              "'refit', train with the CLI: its curve is the honest one).")
@click.option("--eval-every", type=click.IntRange(1), default=10, show_default=True,
              help="Epochs between the points of the --protocol curve.")
@click.option("--sampling", type=click.Choice(SAMPLING), default=None,
              help="Override the preset's sampling (the LightGCN reference draws users).")
def main(device, threads, seed, json_path, datasets, data_dir, preset_name, dtypes, orders,
         learning_rate, batch_size, timing_epochs, profile_steps, min_run_time, quality_run,
         epochs, compare_recbole, protocol, eval_every, sampling) -> None:  # fmt: skip
    dev, hw = hardware.start(device, threads)
    changes: dict[str, Any] = {"epochs": epochs, "device": str(dev), "seed": seed}
    if learning_rate is not None:
        changes["learning_rate"] = learning_rate
    if batch_size is not None:
        changes["batch_size"] = batch_size
    if sampling is not None:
        changes["sampling"] = sampling
    base = preset(preset_name, **changes)
    levers = list(itertools.product(dict.fromkeys(dtypes), dict.fromkeys(orders)))
    notes: list[str] = []
    results, timing_rows, breakdown_rows, quality_rows, qualities = [], [], [], [], []
    curve_rows, curves = [], []
    for name, data, split, how in loaded(datasets, data_dir, seed, notes):
        click.echo(f"{data!r}; split {how}: train {split.train.num_interactions}, valid "
                   f"{split.valid.num_interactions}, test {split.test.num_interactions}",
                   err=True)  # fmt: skip
        entry = {"dataset": name, "users": data.num_users, "items": data.num_items,
                 "split": how, "train": split.train.num_interactions,
                 "valid": split.valid.num_interactions, "test": split.test.num_interactions,
                 "runs": []}  # fmt: skip
        for dtype, order in levers:
            cfg = base.replace(propagation_dtype=dtype, node_order=order)
            click.echo(f"timing {name}: {dtype}, node order {order} ...", err=True)
            r = time_lever(split, cfg, timing_epochs, profile_steps, min_run_time)
            entry["runs"].append(r)
            timing_rows.append(timing_row(name, dev, r))
            breakdown_rows.append(breakdown_row(name, dev, r))
        results.append(entry)
        if quality_run and how == "random":
            first = base.replace(propagation_dtype=levers[0][0], node_order=levers[0][1])
            q, rows = quality(name, data, split, first, entry["runs"][0]["epoch_s"],
                              compare_recbole, notes)  # fmt: skip
            qualities.append(q)
            quality_rows += rows
        if protocol is not None:
            cfg = base.replace(propagation_dtype=levers[0][0], node_order=levers[0][1],
                               eval_every=eval_every, metric="recall@20", ks=(20,),
                               patience=0 if protocol == "paper" else base.patience)  # fmt: skip
            click.echo(f"curve {name}: {protocol} protocol, {epochs} epochs ...", err=True)
            c, rows = curve(name, data, cfg, protocol)
            curves.append(c)
            curve_rows += rows
    click.echo(f"Training steps, {preset_name} preset (d {base.embedding_dim}, K "
               f"{base.num_layers}, batch {base.batch_size}), median of {timing_epochs} "
               f"epochs; propagation share from a profile of {profile_steps} steps")  # fmt: skip
    click.echo(report.format_table(TIMING_HEADER, timing_rows))
    click.echo(f"The profiled steps ({profile_steps}) per step: {BREAKDOWN_NOTE[dev.type]}")
    click.echo(report.format_table(BREAKDOWN_HEADER, breakdown_rows))
    if quality_rows:
        click.echo("Quality: early stopping on validation NDCG@20, test metrics (full ranking)")
        click.echo(report.format_table(QUALITY_HEADER, quality_rows))
    if curve_rows:
        click.echo(f"Metric curve every {eval_every} epochs ({protocol} protocol; seconds "
                   "include the evaluations)")  # fmt: skip
        click.echo(report.format_table(CURVE_HEADER, curve_rows))
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(hardware.finish(hw))
    config = {"preset": preset_name, "config": base.to_dict(), "timing_epochs": timing_epochs,
              "profile_steps": profile_steps, "warmup_steps_min": WARMUP_STEPS,
              "min_run_time": min_run_time}  # fmt: skip
    report.write_json(json_path, {"benchmark": "train", "hardware": hw, "config": config,
                                  "datasets": results, "quality": qualities, "curves": curves,
                                  "notes": notes})


if __name__ == "__main__":  # pragma: no cover
    main()
