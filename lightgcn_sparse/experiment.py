"""End-to-end workflow on a dataset: split, train, evaluate against a baseline, report.

This is the public API the CLI is a thin layer over; everything here is usable from Python.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from .baseline import Popularity
from .checkpoint import CheckpointError, atomic_write_text
from .config import Config
from .data import Interactions, Split, load_dataset, split_interactions
from .idmap import IdMap
from .metrics import METRICS
from .model import LightGCN
from .recommender import FactorRecommender
from .titles import resolve_title


@dataclass
class DataSpec:
    """How the interactions and their split were made; saved in the model's config.extra."""

    dataset: str = "ml-100k"  # a name from lightgcn_sparse.data.DATASETS, or a path
    data_dir: Optional[str] = None  # explicit folder holding the files
    min_rating: Optional[float] = None  # keep ratings >= this ("liked"); None keeps all
    split: str = "random"  # "random", "global", "stratified" or "temporal"
    split_seed: int = 2020  # seed of the split (independent of the training seed)

    def load(self, download: bool = True) -> tuple[Interactions, Split]:
        data = load_dataset(
            self.dataset, self.data_dir, download=download, min_rating=self.min_rating
        )
        return data, split_interactions(data, self.split, seed=self.split_seed)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def train(
    spec: DataSpec,
    config: Config,
    *,
    show_progress: bool = True,
    checkpoint_path: Optional[Union[str, Path]] = None,
    checkpoint_every: int = 0,
    resume: Optional[Union[str, Path]] = None,
    data: Optional[tuple[Interactions, Split]] = None,
    strategy: Any = None,
) -> tuple[LightGCN, Interactions, Split]:
    """Load and split ``spec``'s data and fit LightGCN with early stopping on validation.

    ``data`` reuses an already loaded ``(interactions, split)``; ``strategy`` is passed to
    :meth:`LightGCN.fit` (e.g. a :class:`~lightgcn_sparse.distributed.DataParallel`).
    """
    data_all, split = data if data is not None else spec.load()
    config = config.replace(extra={**config.extra, "data": spec.to_dict()})
    model = LightGCN(config)
    model.dataset = data_all.name or str(spec.dataset)
    valid = split.valid.to_csr() if split.valid.num_interactions else None
    model.fit(
        split.train.to_csr(),
        valid,
        show_progress=show_progress,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        resume=resume,
        strategy=strategy,
        user_ids=data_all.user_ids,
        item_ids=data_all.item_ids,
    )
    return model, data_all, split


def seen_in_training(split: Split):
    """Train + valid interactions: excluded from the test ranking."""
    return (split.train.to_csr() + split.valid.to_csr()).tocsr()


def evaluate_test(model: FactorRecommender, split: Split, ks=(10, 20)) -> dict[str, float]:
    """Full-ranking test metrics of any model, train and valid items excluded."""
    return model.evaluate(split.test.to_csr(), exclude=seen_in_training(split), ks=ks)


def popularity_metrics(split: Split, ks=(10, 20), device: str = "cpu") -> dict[str, float]:
    """The :class:`~lightgcn_sparse.baseline.Popularity` baseline, fitted on train, under
    the same protocol as :func:`evaluate_test`."""
    return evaluate_test(Popularity(device).fit(split.train.to_csr()), split, ks)


def metrics_table(results: dict[str, dict[str, float]], ks=(10, 20)) -> pd.DataFrame:
    """Rows ``Recall@10 ...``, one column per model (e.g. LightGCN, Popularity)."""
    names = {"recall": "Recall", "precision": "Precision", "ndcg": "NDCG", "hit": "HitRate",
             "map": "MAP"}  # fmt: skip
    rows = [(f"{names[m]}@{k}", f"{m}@{k}") for m in METRICS for k in ks]
    return pd.DataFrame(
        {col: [res.get(key, math.nan) for _, key in rows] for col, res in results.items()},
        index=[label for label, _ in rows],
    )


def finish_training(
    model: LightGCN,
    split: Split,
    out_dir: Union[str, Path],
    ks=(10, 20),
    metrics_json: Optional[Union[str, Path]] = None,
    extra: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Evaluate on test (popularity beside), then write the model, history and metrics.

    Evaluation runs before anything is written, so a failure leaves earlier outputs intact;
    every file is written atomically. Returns the metrics payload also saved as
    ``out_dir/metrics.json`` (and ``metrics_json`` if given): LightGCN's test metrics at the
    top level, ``baseline`` for popularity's, plus run facts and ``extra``.
    """
    ks = tuple(sorted(set(ks)))
    ours = evaluate_test(model, split, ks)
    pop = popularity_metrics(split, ks, model.config.device)
    out = Path(out_dir)
    model.save(out / "model.npz")
    write_history(model, out)
    payload: dict[str, Any] = dict(ours)
    payload.update(
        baseline=pop,
        best_epoch=model.best_epoch_,
        epochs_run=len(model.history_),
        config=model.config.to_dict(),
        **(extra or {}),
    )
    text = json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n"
    for path in (out / "metrics.json", metrics_json):
        if path:
            atomic_write_text(path, text)
    return payload


def history_frame(model: LightGCN) -> pd.DataFrame:
    return pd.DataFrame(model.history_)


def write_history(model: LightGCN, out_dir: Union[str, Path]) -> list[Path]:
    """Write ``history.csv``, ``history.json``, ``timings.json`` and, when matplotlib is
    installed, a plot. Wall-clock times go to ``timings.json`` only, so the other files of
    two identical runs are identical byte for byte."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = history_frame(model)
    written = [out / "history.csv", out / "history.json", out / "timings.json"]
    atomic_write_text(written[0], frame.to_csv(index=False))
    atomic_write_text(written[1], json.dumps(model.history_, indent=1, default=float) + "\n")
    timings = {"epochs": model.timings_, "train_seconds": train_seconds(model)}
    atomic_write_text(written[2], json.dumps(timings, indent=1, default=float) + "\n")
    plot = plot_history(frame, out / "history.png", model.config.metric)
    return written + ([plot] if plot else [])


def train_seconds(model: LightGCN) -> float:
    """Wall-clock seconds of the epochs trained (validation included)."""
    return float(sum(t["seconds"] for t in getattr(model, "timings_", [])))


def plot_history(frame: pd.DataFrame, path: Path, metric: str) -> Optional[Path]:
    """Loss (train and validation) and the validation metric per epoch; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(frame["epoch"], frame["loss"], label="train BPR loss")
    if "val_loss" in frame:
        ax1.plot(frame["epoch"], frame["val_loss"], label="validation BPR loss")
    ax1.set_xlabel("epoch")
    ax1.legend()
    if metric in frame:
        ax2.plot(frame["epoch"], frame[metric], label=f"validation {metric}")
        ax2.set_xlabel("epoch")
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def load_model_and_data(
    model_path: Union[str, Path], spec: Optional[DataSpec] = None, download: bool = True
) -> tuple[LightGCN, Interactions, Split]:
    """Load a saved model and the data it was trained on; refuse a mismatched dataset."""
    model = LightGCN.load(model_path)
    saved = model.config.extra.get("data")
    if spec is None:
        if not saved:
            raise CheckpointError(f"{str(model_path)!r} does not record its dataset; pass one.")
        spec = DataSpec(**saved)
    data, split = spec.load(download=download)
    check_same_catalogue(model, data, model_path)
    return model, data, split


def check_same_catalogue(model: LightGCN, data: Interactions, model_path) -> None:
    same = (model.num_users, model.num_items) == (data.num_users, data.num_items)
    if same:
        same = model.item_map == IdMap(data.item_ids) and model.user_map == IdMap(data.user_ids)
    if not same:
        raise CheckpointError(
            f"{str(model_path)!r} was trained on another dataset ({model.dataset!r}: "
            f"{model.num_users} users x {model.num_items} items); the data given has "
            f"{data.num_users} users x {data.num_items} items ({data.name!r})."
        )


def titles_of(data: Interactions) -> tuple[list[str], Optional[list]]:
    if data.items_meta is None:
        return [str(i) for i in data.item_ids], None
    return data.items_meta["title"].astype(str).tolist(), data.items_meta["year"].tolist()


def find_movie(data: Interactions, query: str) -> int:
    """The item index whose title matches ``query`` (see :func:`titles.resolve_title`)."""
    titles, years = titles_of(data)
    return resolve_title(query, titles, years)


def describe_items(data: Interactions, ids: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """A table of recommended items: raw id, title, year, genres and score."""
    frame = pd.DataFrame({"item": np.asarray(data.item_ids)[ids], "score": scores})
    if data.items_meta is not None:
        meta = data.items_meta.iloc[ids].reset_index(drop=True)
        frame = pd.concat(
            [frame[["item"]], meta[["title", "year", "genres"]], frame[["score"]]], axis=1
        )
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="rank")
    return frame
