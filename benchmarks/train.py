"""ml-100k training benchmark: epoch time and test metrics, optionally beside RecBole.

    python -m benchmarks.train [--device cpu|cuda] [--preset recbole] [--epochs 100]
                               [--compare-recbole] [--json out.json]

Two measurements on one split (RecBole's protocol: per-user random 80/10/10, full ranking,
train and valid items excluded from the test ranking):

1. epoch time: ``--timing-epochs`` epochs of pure training (no validation), median per epoch;
2. quality: a full run with early stopping on validation NDCG@20, then test metrics, with the
   popularity baseline beside.

``--compare-recbole`` writes the identical split as RecBole atomic files
(``benchmark_filename``) and runs RecBole's own LightGCN on it with the same
hyperparameters, inside a temporary working directory (RecBole writes ./log,
./log_tensorboard and ./saved), when ``recbole`` and its dependencies are importable (never
a dependency of this project; skipped with a note otherwise).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch

from lightgcn_sparse.config import PRESETS, preset
from lightgcn_sparse.data import Interactions, Split
from lightgcn_sparse.experiment import (
    DataSpec,
    evaluate_test,
    popularity_metrics,
    train,
)
from lightgcn_sparse.model import LightGCN

from . import hardware
from .options import run_options
from .report import format_table, write_json

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@10", "map@10")


def epoch_seconds(split: Split, cfg, epochs: int) -> list[float]:
    """Seconds of each of ``epochs`` pure training epochs (no validation)."""
    model = LightGCN(cfg.replace(epochs=epochs))
    model.fit(split.train.to_csr(), show_progress=False)
    return [t["seconds"] for t in model.timings_]


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


def run_recbole(split: Split, cfg, epochs: int, device: torch.device) -> dict[str, Any]:
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


@click.command(help=__doc__)
@run_options(seed=2020)
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default="recbole",
              show_default=True, help="Reference config: RecBole's settings.")  # fmt: skip
@click.option("--epochs", type=click.IntRange(1), default=100, show_default=True)
@click.option("--learning-rate", type=float, default=None, help="Override the preset's.")
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--timing-epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--dataset", default="ml-100k", show_default=True)
@click.option("--compare-recbole", is_flag=True, help="Also run RecBole's LightGCN.")
def main(device, threads, seed, json_path, preset_name, epochs, learning_rate, batch_size,
         timing_epochs, dataset, compare_recbole) -> None:  # fmt: skip
    dev, info = hardware.start(device, threads)
    changes: dict[str, Any] = {"epochs": epochs, "device": str(dev), "seed": seed}
    if learning_rate is not None:
        changes["learning_rate"] = learning_rate
    if batch_size is not None:
        changes["batch_size"] = batch_size
    cfg = preset(preset_name, **changes)
    spec = DataSpec(dataset, split="random", split_seed=seed)
    data, split = spec.load()
    click.echo(f"{data!r}; train {split.train.num_interactions}, valid "
               f"{split.valid.num_interactions}, test {split.test.num_interactions}")  # fmt: skip

    per_epoch = epoch_seconds(split, cfg, timing_epochs)
    epoch_s = statistics.median(per_epoch)
    start = time.perf_counter()
    model, _, _ = train(spec, cfg, show_progress=False, data=(data, split))
    fit_s = time.perf_counter() - start
    ours = evaluate_test(model, split, (10, 20))
    pop = popularity_metrics(split, (10, 20), str(dev))
    results: dict[str, Any] = {
        "hardware": info,
        "config": cfg.to_dict(),
        "epoch_seconds": per_epoch,
        "epoch_seconds_median": epoch_s,
        "fit_seconds": fit_s,
        "best_epoch": model.best_epoch_,
        "epochs_run": len(model.history_),
        "lightgcn_sparse": ours,
        "popularity": pop,
    }
    rows = [["lightgcn-sparse", f"{epoch_s:.3f}", f"{fit_s:.1f}",
             f"{model.best_epoch_}/{len(model.history_)}"] + [f"{ours[k]:.4f}" for k in KEYS],
            ["popularity", "-", "-", "-"] + [f"{pop[k]:.4f}" for k in KEYS]]  # fmt: skip
    recbole: Optional[dict[str, Any]] = None
    if compare_recbole:
        try:
            recbole = run_recbole(split, cfg, epochs, dev)
        except ImportError as err:
            click.echo(f"note: recbole with its dependencies is not importable ({err}); skipped.")
        except Exception as err:  # an incompatible recbole/scipy/numpy combination, say
            click.echo(f"note: the RecBole run failed ({type(err).__name__}: {err}); skipped.")
        else:
            t = recbole["test"]
            rows.append(["RecBole LightGCN", "-", f"{recbole['seconds']:.1f}", "-"]
                        + [f"{t.get(k, float('nan')):.4f}" for k in KEYS])  # fmt: skip
            results["recbole"] = recbole
    click.echo(format_table(["model", "s/epoch", "fit s", "best/ran", *KEYS], rows))
    click.echo(hardware.finish(info))
    write_json(json_path, results)


if __name__ == "__main__":  # pragma: no cover
    main()
