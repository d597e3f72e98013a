"""``lightgcn-sparse``: a thin command line over :mod:`lightgcn_sparse.experiment`.

Options, their help and the mapping of errors to options live in
:mod:`lightgcn_sparse.cli_options`; what a run writes in :mod:`lightgcn_sparse.reporting`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from . import __version__
from .checkpoint import atomic_write_text, from_json_array, read_npz
from .cli_options import (
    check_valid_fraction,
    config_of,
    data_options,
    friendly_errors,
    interrupted,
    k_option,
    metrics_json_option,
    model_option,
    spec_fields,
    spec_of,
    survive_closed_pipes,
    train_options,
)
from .config import Config
from .experiment import (
    DataSpec,
    check_cutoffs,
    evaluate_test,
    load_model_and_data,
    popularity_metrics,
    protocol_note,
    train,
)
from .lookup import describe_items, find_item, find_user, item_label, item_noun
from .reporting import (
    RunLock,
    check_metrics_json,
    check_outputs,
    drop_replaced_checkpoint,
    earlier_checkpoint,
    finish_training,
    metrics_table,
    save_interrupted,
    train_seconds,
)


def _echo_table(frame: pd.DataFrame, floatfmt: str = "{:.4f}") -> None:
    click.echo(frame.to_string(float_format=floatfmt.format))


def _shown(value: Any) -> str:
    return f"{value:,}" if isinstance(value, (int, np.integer)) else str(value)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lightgcn-sparse")
def main() -> None:
    """LightGCN recommendations on torch.sparse, without PyG."""


@main.command("train")
@train_options
@friendly_errors
def train_cmd(preset_name, alpha, out, metrics_json, checkpoint_every, resume, overwrite, ks,
              quiet, **options):  # fmt: skip
    """Train LightGCN, evaluate on the test split, and save the model."""
    survive_closed_pipes()
    spec = spec_of(options)
    check_valid_fraction(spec)
    cfg = config_of(preset_name, alpha, options)
    out = Path(os.path.normpath(out))  # "a/../b" as the folders made for it
    created = check_outputs(out, metrics_json, resume, overwrite)
    started = time.time()
    with RunLock(out, created):
        done = None
        if resume is not None and spec.protocol != "refit":  # refit: the phase decides
            done = _check_resume(resume, cfg)
        checkpoint_every = resumed_checkpoints(resume, checkpoint_every, cfg, quiet)
        loaded = spec.load(download=not options["no_download"])
        table, split = loaded
        check_valid_fraction(spec, table)
        ks = report_cutoffs(ks, table.num_items)
        cfg = validation_cutoffs(cfg, table.num_items, options.get("metric") is not None)
        if not quiet:
            _announce(table, split, spec.resolved(table))
            announce_resume(resume, done)
        try:
            model, table, split = train(
                spec, cfg, show_progress=not quiet, checkpoint_path=out / "checkpoint.npz",
                checkpoint_every=checkpoint_every, resume=resume, data=loaded,
            )  # fmt: skip
        except KeyboardInterrupt:
            raise _interrupted(out, checkpoint_every, started, resume) from None
        report_training(model, split, spec.resolved(table), out, ks, metrics_json, quiet=quiet)
        drop_replaced_checkpoint(out, started, resume)


def announce_resume(resume, done: int | None) -> None:
    """Say which checkpoint this run continues (and after which epoch, where known)."""
    if resume is not None:
        after = "" if done is None else f" after epoch {done}"
        click.echo(f"resuming {resume}{after}", err=True)


def resumed_checkpoints(resume, checkpoint_every: int | None, cfg: Config, quiet: bool) -> int:
    """``--checkpoint-every`` for this run (None: not given): a resumed run without it keeps
    writing checkpoints, at each evaluation (every ``eval_every`` epochs), and says so."""
    if checkpoint_every is not None:
        return checkpoint_every
    if resume is None:
        return 0
    if not quiet:
        click.echo(f"checkpoints every {cfg.eval_every} epochs (--eval-every), as it "
                   "resumes one; --checkpoint-every N sets another interval", err=True)  # fmt: skip
    return cfg.eval_every


def report_cutoffs(ks: tuple[int, ...], num_items: int) -> tuple[int, ...]:
    """``-k`` checked against the catalogue; when not given, its defaults (10, 20) that fit
    (a catalogue under 20 items reports the cutoffs it has)."""
    source = click.get_current_context().get_parameter_source("ks")
    if source == click.core.ParameterSource.DEFAULT:
        ks = tuple(k for k in ks if k <= num_items) or (num_items,)
    return check_cutoffs(ks, num_items)


def validation_cutoffs(cfg: Config, num_items: int, metric_given: bool = True) -> Config:
    """``cfg`` with the validation cutoffs larger than the catalogue dropped (a catalogue
    under 20 items can train). A ``--metric`` given must fit; the preset's (e.g. ndcg@20)
    falls back to the largest cutoff that does."""
    name, _, k = cfg.metric.partition("@")
    fits = [c for c in cfg.ks if c <= num_items] or [num_items]
    if int(k) > num_items and not metric_given:
        cfg = cfg.replace(metric=f"{name}@{max(fits)}")
    check_cutoffs((int(cfg.metric.partition("@")[2]),), num_items, "metric")
    return cfg.replace(ks=tuple(c for c in cfg.ks if c <= num_items) or (num_items,))


def _announce(table, split, spec: DataSpec) -> None:
    read = table.describe().get("read", "")
    click.echo(f"{table.name}: {table.num_users:,} users, {table.num_items:,} items; read {read}",
               err=True)  # fmt: skip
    click.echo(
        f"split {spec.split} ({spec.protocol} protocol): train {split.train.num_interactions:,}, "
        f"valid {split.valid.num_interactions:,}, test {split.test.num_interactions:,}",
        err=True,
    )


def _check_resume(resume: str, cfg: Config) -> int:
    """The epochs the checkpoint has trained; refuse a resume that would train nothing."""
    data = read_npz(resume)
    if "train_state" not in data:
        return 0  # the trainer explains what is wrong with it
    done = int(from_json_array(data["train_state"], resume, "train_state").get("epoch", 0))
    if done >= cfg.epochs:
        raise click.BadParameter(
            f"the checkpoint has already trained {done} epochs; give more than {done} to "
            f"continue it (--epochs {cfg.epochs} would train none).",
            param_hint="'--epochs'",
        )
    return done


def _interrupted(out: Path, checkpoint_every: int, started: float, resume) -> click.ClickException:
    checkpoint = out / "checkpoint.npz"
    if checkpoint.exists() and not earlier_checkpoint(out, started, resume):
        return interrupted(f"interrupted. Continue from the last checkpoint with the same "
                           f"options and --resume {checkpoint}")  # fmt: skip
    if resume is not None:
        return interrupted("interrupted before this run wrote a checkpoint. Continue from "
                           f"the one it resumed with the same options and --resume {resume}")
    if checkpoint_every:
        return interrupted(f"interrupted before the first checkpoint (every {checkpoint_every} "
                           "epochs) was written; nothing was saved.")  # fmt: skip
    return interrupted("interrupted before any checkpoint was written; nothing was saved. "
                       "Run with --checkpoint-every N to be able to --resume.")


def report_training(model, split, spec: DataSpec, out: Path, ks, metrics_json=None,
                    extra=None, quiet: bool = False) -> None:  # fmt: skip
    """Evaluate, save (see :func:`reporting.finish_training`) and print the summary."""
    if not quiet:
        click.echo(f"evaluating LightGCN and Popularity on {split.test.num_interactions:,} test "
                   "interactions ...", err=True)  # fmt: skip
    facts = {"protocol": spec.protocol, "selected_on": "test" if spec.protocol == "paper"
             else "validation", **(extra or {})}  # fmt: skip
    try:
        payload = finish_training(model, split, out, ks, metrics_json, facts)
    except KeyboardInterrupt:  # the model is trained: keep it, only its test metrics are lost
        save_interrupted(model, out)
        raise interrupted(
            f"interrupted during the test evaluation. The trained model is saved in "
            f"{out / 'model.npz'}; 'lightgcn-sparse evaluate --model {out / 'model.npz'}' "
            "computes its test metrics."
        ) from None
    total, ran = train_seconds(model), len(model.timings_)
    procs = f" on {extra['world_size']} process(es)" if extra and "world_size" in extra else ""
    click.echo(f"trained {ran} epochs in {total:.1f}s ({total / max(ran, 1):.2f}s/epoch){procs}")
    click.echo(f"{protocol_note(spec, model)}; test metrics ({payload['users']:,} users):")
    _echo_table(metrics_table({"LightGCN": payload, "Popularity": payload["baseline"]}, ks))
    click.echo(f"saved {out / 'model.npz'}")


def _load(model_path: str, options: dict[str, Any]):
    """The model and its data; each data option given replaces the recorded setting."""
    loaded = load_model_and_data(
        model_path, spec_fields(options), download=not options.get("no_download")
    )
    check_valid_fraction(loaded[3], loaded[1])  # as train: refused where the split ignores it
    return loaded


@main.command("evaluate")
@model_option
@data_options(recorded=True)
@k_option()
@metrics_json_option
@friendly_errors
def evaluate_cmd(model_path, ks, metrics_json, **options):
    """Test metrics of a saved model on the split it was trained with, popularity beside."""
    if metrics_json:
        check_metrics_json(metrics_json)
    model, table, split, spec = _load(model_path, options)
    ks = report_cutoffs(ks, model.num_items)
    results = {"LightGCN": evaluate_test(model, split, ks),
               "Popularity": popularity_metrics(split, ks, model.config.device)}  # fmt: skip
    click.echo(f"{table.name}, split {spec.split} ({spec.protocol} protocol); test users: "
               f"{results['LightGCN']['users']:,}")  # fmt: skip
    _echo_table(metrics_table(results, ks))
    if metrics_json:
        payload = dict(results["LightGCN"], baseline=results["Popularity"],
                       protocol=spec.protocol)  # fmt: skip
        text = json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n"
        atomic_write_text(metrics_json, text)


def _top(k: int, model) -> int:
    if k > model.num_items:
        raise click.BadParameter(f"{k} is more than the catalogue holds ({model.num_items} "
                                 "items).", param_hint="'-k' / '--top'")  # fmt: skip
    return k


@main.command("recommend")
@model_option
@data_options(recorded=True)
@click.option("--user", default=None, help="Raw id of a user in the data (e.g. 196).")
@click.option("--likes", multiple=True, help="An item the (new) user likes: its raw id, "
              "'id:<raw id>', or where the data has titles a title; repeatable.")  # fmt: skip
@click.option("-k", "--top", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many items to list.")  # fmt: skip
@friendly_errors
def recommend_cmd(model_path, user, likes, k, **options):
    """Top-k items for a known user (--user) or a new one (--likes ITEM ...)."""
    if (user is None) == (not likes):
        raise click.UsageError("give exactly one of --user ID or --likes ITEM (repeatable).")
    model, table, _, _ = _load(model_path, options)
    k = _top(k, model)
    noun = item_noun(table)
    if user is not None:
        ids, scores = model.recommend(find_user(table, user), N=k)
        heading = f"user {user} (training {noun}s excluded)"
    else:
        liked = [find_item(table, text) for text in likes]
        click.echo(f"A new user who likes: {'; '.join(item_label(table, i) for i in liked)}")
        ids, scores = model.recommend_for_items(liked, N=k)
        heading = "them (no retraining)"
    click.echo(f"Top {len(ids)} {noun}s for {heading}:")
    _echo_table(describe_items(table, ids, scores))


@main.command("similar")
@model_option
@data_options(recorded=True)
@click.option("--item", "--movie", "item", required=True, help="An item: its raw id, "
              "'id:<raw id>', or where the data has titles a title (--movie is the same).")
@click.option("-k", "--top", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many items to list.")  # fmt: skip
@friendly_errors
def similar_cmd(model_path, item, k, **options):
    """Items closest to --item by cosine of the LightGCN embeddings."""
    model, table, _, _ = _load(model_path, options)
    index = find_item(table, item)
    ids, scores = model.similar_items(index, N=min(_top(k, model) + 1, model.num_items))
    keep = ids != index
    noun = item_noun(table)
    frame = describe_items(table, ids[keep][:k], scores[keep][:k])
    click.echo(f"{noun.capitalize()}s similar to {item_label(table, index)} ({len(frame)}):")
    _echo_table(frame)


@main.command("info")
@data_options()
@friendly_errors
def info_cmd(**options):
    """Dataset statistics and the sizes of its split."""
    spec = spec_of(options)
    check_valid_fraction(spec)
    table, split = spec.load(download=not options["no_download"])
    check_valid_fraction(spec, table)
    lines = {key: _shown(value) for key, value in table.describe().items()}
    spec = spec.resolved(table)
    lines[f"split {spec.split} ({spec.protocol} protocol)"] = (
        f"train {split.train.num_interactions:,} / valid {split.valid.num_interactions:,} / "
        f"test {split.test.num_interactions:,}"
    )
    width = max(len(key) for key in lines)
    for key, value in lines.items():
        click.echo(f"{key:>{width}}: {value}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
