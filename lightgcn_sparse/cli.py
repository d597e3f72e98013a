"""``lightgcn-sparse``: a thin command line over :mod:`lightgcn_sparse.experiment`."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np
import pandas as pd

from . import __version__
from ._checks import check_device
from .checkpoint import CheckpointError, atomic_write_text
from .config import PRESETS, Config, preset
from .data import DATASETS, SPLIT_METHODS, DataFileError, DatasetNotFoundError, UnknownIdError
from .experiment import (
    DataSpec,
    describe_items,
    evaluate_test,
    find_movie,
    finish_training,
    load_model_and_data,
    metrics_table,
    popularity_metrics,
    train,
    train_seconds,
)
from .model import NotFittedError, TrainingDiverged

USER_ERRORS = (
    ValueError,
    TypeError,
    FileNotFoundError,
    DatasetNotFoundError,
    DataFileError,
    CheckpointError,
    UnknownIdError,
    NotFittedError,
    TrainingDiverged,
    OSError,
)


#: Set to 1 to see the full traceback of an unexpected error.
DEBUG_ENV = "LIGHTGCN_SPARSE_DEBUG"


def _message(err: BaseException) -> str:
    """The text of ``err``; a plain ``KeyError`` is shown without its repr quotes."""
    if type(err) is KeyError and len(err.args) == 1:
        return str(err.args[0])
    return str(err) or type(err).__name__


def friendly_errors(func: Callable) -> Callable:
    """Turn exceptions into one ``Error:`` line and exit code 1, never a traceback.

    The library's own errors (bad arguments, bad files, divergence) carry messages written
    for users. Anything else is a bug: it is reported in one line too, with the way to get
    the traceback (``LIGHTGCN_SPARSE_DEBUG=1``).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except USER_ERRORS as err:
            raise click.ClickException(_message(err)) from err
        except Exception as err:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(
                f"unexpected {type(err).__name__}: {_message(err)} (this is a bug; run again "
                f"with {DEBUG_ENV}=1 to see the traceback, and please report it)"
            ) from err

    return wrapper


def data_options(func: Callable) -> Callable:
    """--dataset, --data-dir, --min-rating, --split, --split-seed, --no-download."""
    options = [
        click.option("--dataset", default="ml-100k", show_default=True,
                     help=f"One of {', '.join(DATASETS)}, or a path to a file or folder."),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Folder holding the dataset's files (searched first)."),
        click.option("--min-rating", type=float, default=None,
                     help="Keep only ratings >= this as interactions (e.g. 4 for 'liked')."),
        click.option("--split", "split_method", type=click.Choice(SPLIT_METHODS),
                     default="random", show_default=True, help="How to split train/valid/test."),
        click.option("--split-seed", type=click.IntRange(min=0), default=2020,
                     show_default=True),
        click.option("--no-download", is_flag=True, help="Never download the dataset."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _spec(dataset, data_dir, min_rating, split_method, split_seed) -> DataSpec:
    return DataSpec(dataset, data_dir, min_rating, split_method, split_seed)


def _echo_table(frame: pd.DataFrame, floatfmt: str = "{:.4f}") -> None:
    click.echo(frame.to_string(float_format=floatfmt.format))


def _write_json(path: str | None, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (an existing file is replaced only whole)."""
    if path:
        text = json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n"
        atomic_write_text(path, text)


@click.group()
@click.version_option(__version__, prog_name="lightgcn-sparse")
def main() -> None:
    """LightGCN recommendations on torch.sparse, without PyG."""


_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def config_options(func: Callable) -> Callable:
    """One option per Config field; unset options keep the preset's value."""
    specs = [
        ("--embedding-dim", int), ("--num-layers", int), ("--learning-rate", float),
        ("--lr-decay", float), ("--reg", float), ("--batch-size", int), ("--epochs", int),
        ("--batches-per-epoch", int), ("--init-std", float), ("--eval-every", int),
        ("--patience", int), ("--metric", str), ("--seed", int), ("--device", str),
        ("--kernel", click.Choice(["auto", "embedding_bag", "sparse_mm"])),
        ("--cuda-graph", click.Choice(["auto", "on", "off"])),
        ("--propagation-dtype", click.Choice(["float32", "bfloat16", "float16"])),
        ("--node-order", click.Choice(["none", "degree", "rcm", "balanced"])),
        ("--sampling", click.Choice(["interactions", "users"])),
        ("--norm-left", float), ("--norm-right", float), ("--layer-norm", bool),
    ]  # fmt: skip
    for flag, kind in reversed(specs):
        name = flag[2:].replace("-", "_")
        default = _CONFIG_FIELDS[name].default
        func = click.option(flag, type=kind, default=None,
                            help=f"Config.{name} (default {default!r}).")(func)  # fmt: skip
    func = click.option(
        "--alpha",
        type=float,
        multiple=True,
        help="Layer weight, once per layer 0..K (default 1/(K+1) each).",
    )(func)
    func = click.option(
        "--preset",
        "preset_name",
        type=click.Choice(sorted(PRESETS)),
        default="default",
        show_default=True,
        help="Start from a named configuration ('cs224w' = the tutorial's).",
    )(func)
    return func  # fmt: skip


def _config(preset_name: str, alpha, overrides: dict[str, Any]) -> Config:
    """The preset with the given options applied; a bad value names its option (exit 2)."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    if alpha:
        changes["alpha"] = tuple(alpha)
    try:
        cfg = preset(preset_name, **changes)
        check_device(cfg.device)
    except (TypeError, ValueError) as err:
        field = re.match(r"\w+", str(err))
        name = field.group(0) if field else ""
        hint = f"'--{name.replace('_', '-')}'" if name in _CONFIG_FIELDS else None
        raise click.BadParameter(str(err), param_hint=hint) from err
    return cfg


def _check_cutoffs(ks, cfg: Config, num_items: int) -> None:
    """Fail before training when a cutoff exceeds the catalogue."""
    if max(ks) > num_items:
        raise click.BadParameter(
            f"cutoff {max(ks)} is larger than the catalogue ({num_items} items).",
            param_hint="'-k'",
        )
    if max(cfg.ks) > num_items:
        raise click.BadParameter(
            f"{cfg.metric!r} ranks {max(cfg.ks)} items but the catalogue has {num_items}.",
            param_hint="'--metric'",
        )


def train_options(func: Callable) -> Callable:
    """Data, config and output options of training, shared with ``lightgcn_sparse.train``."""
    options = [
        data_options,
        config_options,
        click.option(
            "--out",
            type=click.Path(file_okay=False),
            default="runs/lightgcn",
            show_default=True,
            help="Folder for model.npz, history and metrics.",
        ),
        click.option(
            "--metrics-json",
            type=click.Path(dir_okay=False),
            default=None,
            help="Also write the final test metrics here.",
        ),
        click.option(
            "--checkpoint-every",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Write a resumable checkpoint every N epochs (0: never).",
        ),
        click.option(
            "--resume",
            type=click.Path(dir_okay=False, exists=True),
            default=None,
            help="Continue an interrupted run from its checkpoint.",
        ),
        click.option(
            "-k",
            "ks",
            type=click.IntRange(min=1),
            multiple=True,
            default=(10, 20),
            show_default=True,
            help="Cutoffs of the reported metrics.",
        ),
        click.option("--quiet", is_flag=True, help="No progress output."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command("train")
@train_options
@friendly_errors
def train_cmd(
    dataset,
    data_dir,
    min_rating,
    split_method,
    split_seed,
    no_download,
    preset_name,
    alpha,
    out,
    metrics_json,
    checkpoint_every,
    resume,
    ks,
    quiet,
    **overrides,
):
    """Train LightGCN, evaluate on the test split, and save the model."""  # fmt: skip
    spec = _spec(dataset, data_dir, min_rating, split_method, split_seed)
    cfg = _config(preset_name, alpha, overrides)
    out = Path(out)
    loaded = spec.load(download=not no_download)
    data, split = loaded
    ks = tuple(sorted(set(ks)))
    _check_cutoffs(ks, cfg, data.num_items)
    if not quiet:
        click.echo(
            f"{data!r}: train {split.train.num_interactions}, valid "
            f"{split.valid.num_interactions}, test {split.test.num_interactions}",
            err=True,
        )
    model, data, split = train(
        spec, cfg, show_progress=not quiet, checkpoint_path=out / "checkpoint.npz",
        checkpoint_every=checkpoint_every, resume=resume, data=loaded,
    )  # fmt: skip
    report_training(model, split, out, ks, metrics_json)


def report_training(model, split, out: Path, ks, metrics_json=None, extra=None) -> None:
    """Evaluate, save (see :func:`experiment.finish_training`) and print the summary."""
    payload = finish_training(model, split, out, ks, metrics_json, extra)
    total, ran = train_seconds(model), len(model.timings_)
    procs = f" on {extra['world_size']} process(es)" if extra and "world_size" in extra else ""
    click.echo(
        f"best epoch {model.best_epoch_} of {ran}; "
        f"training time {total:.1f}s ({total / max(ran, 1):.2f}s/epoch){procs}"
    )
    click.echo(f"test metrics ({payload['users']} users):")
    _echo_table(metrics_table({"LightGCN": payload, "Popularity": payload["baseline"]}, ks))
    click.echo(f"saved {out / 'model.npz'}")


def model_option(func: Callable) -> Callable:
    return click.option("--model", "model_path", type=click.Path(dir_okay=False),
                        default="runs/lightgcn/model.npz", show_default=True,
                        help="A model written by 'train'.")(func)  # fmt: skip


def _load(model_path, spec_args, no_download):
    """The model and its data; the data options override what the model recorded."""
    spec = None
    if spec_args["dataset"] is not None:
        spec = _spec(**spec_args)
    return load_model_and_data(model_path, spec, download=not no_download)


def data_override_options(func: Callable) -> Callable:
    """Like data_options, but defaulting to what the model was trained on."""
    options = [
        click.option("--dataset", default=None,
                     help="Dataset (default: the one the model was trained on)."),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None),
        click.option("--min-rating", type=float, default=None),
        click.option("--split", "split_method", type=click.Choice(SPLIT_METHODS),
                     default="random"),
        click.option("--split-seed", type=click.IntRange(min=0), default=2020),
        click.option("--no-download", is_flag=True),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@main.command("evaluate")
@model_option
@data_override_options
@click.option("-k", "ks", type=click.IntRange(min=1), multiple=True, default=(10, 20),
              show_default=True)  # fmt: skip
@click.option("--metrics-json", type=click.Path(dir_okay=False), default=None)
@friendly_errors
def evaluate_cmd(
    model_path,
    dataset,
    data_dir,
    min_rating,
    split_method,
    split_seed,
    no_download,
    ks,
    metrics_json,
):
    """Test metrics of a saved model, with the popularity baseline beside."""  # fmt: skip
    model, data, split = _load(model_path, dict(dataset=dataset, data_dir=data_dir,
                               min_rating=min_rating, split_method=split_method,
                               split_seed=split_seed), no_download)  # fmt: skip
    ks = tuple(sorted(set(ks)))
    if max(ks) > model.num_items:
        raise click.BadParameter(
            f"cutoff {max(ks)} is larger than the catalogue ({model.num_items} items).",
            param_hint="'-k'",
        )
    results = {"LightGCN": evaluate_test(model, split, ks),
               "Popularity": popularity_metrics(split, ks, model.config.device)}  # fmt: skip
    click.echo(f"{data!r}; test users: {results['LightGCN']['users']}")
    _echo_table(metrics_table(results, ks))
    payload = dict(results["LightGCN"])
    payload["baseline"] = results["Popularity"]
    _write_json(metrics_json, payload)


def _user_index(data, user: str) -> int:
    raw = data.user_ids
    key: Any = user
    if np.issubdtype(np.asarray(raw).dtype, np.integer):
        try:
            key = int(user)
        except ValueError as err:
            raise ValueError(f"--user must be a user id such as {raw[0]}; got {user!r}.") from err
    return data.user_index(key)


def _label(data, item: int) -> str:
    """'Title (year)' of an item index, or its raw id without metadata."""
    if data.items_meta is None:
        return str(data.item_ids[item])
    row = data.items_meta.iloc[item]
    return f"{row['title']} ({row['year']})" if pd.notna(row["year"]) else str(row["title"])


@main.command("recommend")
@model_option
@data_override_options
@click.option("--user", default=None, help="Raw user id from the dataset (e.g. 196).")
@click.option("--likes", multiple=True, help="A movie title the (new) user likes; repeatable.")
@click.option("-k", "--top", "k", type=click.IntRange(min=1), default=10, show_default=True)
@friendly_errors
def recommend_cmd(
    model_path, dataset, data_dir, min_rating, split_method, split_seed, no_download, user, likes, k
):
    """Top-k movies for a known user (--user) or a new one (--likes TITLE ...)."""  # fmt: skip
    if (user is None) == (not likes):
        raise click.UsageError("give exactly one of --user ID or --likes TITLE (repeatable).")
    model, data, _ = _load(model_path, dict(dataset=dataset, data_dir=data_dir,
                           min_rating=min_rating, split_method=split_method,
                           split_seed=split_seed), no_download)  # fmt: skip
    if k > model.num_items:
        raise click.BadParameter(
            f"{k} is more than the catalogue holds ({model.num_items} items).",
            param_hint="'-k' / '--top'",
        )
    if user is not None:
        ids, scores = model.recommend(_user_index(data, user), N=k)
        click.echo(f"Top {k} for user {user} (training items excluded):")
    else:
        liked = [find_movie(data, title) for title in likes]
        click.echo("A new user who likes: " + "; ".join(_label(data, i) for i in liked))
        ids, scores = model.recommend_for_items(liked, N=k)
        click.echo(f"Top {k} for them (no retraining):")
    _echo_table(describe_items(data, ids, scores))


@main.command("similar")
@model_option
@data_override_options
@click.option("--movie", required=True, help="A movie title.")
@click.option("-k", "--top", "k", type=click.IntRange(min=1), default=10, show_default=True)
@friendly_errors
def similar_cmd(
    model_path, dataset, data_dir, min_rating, split_method, split_seed, no_download, movie, k
):
    """Movies closest to --movie by cosine of the LightGCN embeddings."""  # fmt: skip
    model, data, _ = _load(model_path, dict(dataset=dataset, data_dir=data_dir,
                           min_rating=min_rating, split_method=split_method,
                           split_seed=split_seed), no_download)  # fmt: skip
    item = find_movie(data, movie)
    ids, scores = model.similar_items(item, N=min(k + 1, model.num_items))
    keep = ids != item
    frame = describe_items(data, ids[keep][:k], scores[keep][:k])
    click.echo(f"Movies similar to {_label(data, item)}:")
    _echo_table(frame)


@main.command("info")
@data_options
@friendly_errors
def info_cmd(dataset, data_dir, min_rating, split_method, split_seed, no_download):
    """Dataset statistics and the sizes of its split."""
    spec = _spec(dataset, data_dir, min_rating, split_method, split_seed)
    data, split = spec.load(download=not no_download)
    for key, value in data.describe().items():
        click.echo(f"{key:>24}: {value}")
    for part in ("train", "valid", "test"):
        click.echo(f"{part + ' interactions':>24}: {getattr(split, part).num_interactions}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
