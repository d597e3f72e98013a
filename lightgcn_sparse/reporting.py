"""What a training run writes: checked before the first step, locked, written atomically.

An output folder holds ``model.npz``, ``metrics.json``, ``history.csv``/``.json`` (results
only: two identical runs give identical files, byte for byte), ``timings.json`` (wall-clock
seconds, kept apart), ``checkpoint.npz`` when asked, and ``history.png`` when matplotlib is
installed. :func:`check_outputs` finds an unwritable place before any training, and
:class:`RunLock` keeps a second run from writing into the same folder at the same time.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd

from .checkpoint import atomic_write_text
from .metrics import METRICS
from .model import LightGCN

PathLike = Union[str, Path]


class OutputError(OSError):
    """An output location cannot be written; the message names it."""


#: What an output folder holds once a run has written into it.
RUN_FILES = ("model.npz", "checkpoint.npz")


def check_outputs(
    out_dir: PathLike,
    metrics_json: Optional[PathLike] = None,
    resume: Optional[PathLike] = None,
    overwrite: bool = True,
) -> Optional[Path]:
    """Fail now, before any training, if ``out_dir`` or ``metrics_json`` cannot be written,
    or (``overwrite=False``) if ``out_dir`` holds an earlier run's model or checkpoint that
    this run would replace (resuming ``out_dir``'s own checkpoint replaces nothing).

    Creates ``out_dir`` if needed and writes (then removes) a probe file in it and in the
    folder of ``metrics_json``. Returns the outermost folder created here (None if none),
    which a failed run removes again (:class:`RunLock`).
    """
    out = Path(os.path.normpath(out_dir))  # "a/../b": the folders mkdir really makes
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} is a file; name a folder to write the run into.")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not overwrite and not _resumes_own(out, resume):
        go_on = f"continue it with --resume {out / held[-1]}, " if "checkpoint.npz" in held else ""
        raise OutputError(
            f"--out {str(out)!r} already holds a run ({', '.join(held)}), which this one would "
            f"replace: {go_on}give another --out, or pass --overwrite to replace it."
        )
    top = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"--out {str(out)!r} cannot be created ({_reason(err)}).") from err
    try:  # after mkdir: --metrics-json may lie inside the new --out
        _probe(out, f"--out {str(out)!r}")
        if metrics_json:
            check_metrics_json(metrics_json)
    except OutputError:
        _remove_made(out, top)
        raise
    return top


def _remove_made(folder: Path, top: Optional[Path]) -> None:
    """Remove ``folder`` and its parents up to ``top`` (the outermost one this run made),
    as long as they are empty."""
    if top is None:
        return
    for empty in [folder, *folder.parents]:
        if not empty.is_dir() or os.listdir(empty):
            break
        empty.rmdir()
        if empty == top:
            break


def _resumes_own(out: Path, resume: Optional[PathLike]) -> bool:
    """Whether ``resume`` is ``out``'s own checkpoint."""
    return resume is not None and Path(resume).resolve() == (out / "checkpoint.npz").resolve()


def earlier_checkpoint(out_dir: PathLike, started: float, resume: Optional[PathLike]) -> bool:
    """Whether ``out_dir/checkpoint.npz`` is an earlier run's (one replaced with
    ``--overwrite``, or by resuming another folder's checkpoint): written before this run
    ``started`` (``time.time()``) and not the one it resumes. Such a file is never offered
    for ``--resume``, and goes once this run's model is written (until then it is kept: a
    failed run loses nothing)."""
    path = Path(out_dir) / "checkpoint.npz"
    own = _resumes_own(Path(out_dir), resume)
    return not own and path.exists() and path.stat().st_mtime < started


def drop_replaced_checkpoint(out_dir: PathLike, started: float, resume) -> None:
    """Once this run's model is written: remove the replaced run's checkpoint (see
    :func:`earlier_checkpoint`)."""
    if earlier_checkpoint(out_dir, started, resume):
        (Path(out_dir) / "checkpoint.npz").unlink()


def check_metrics_json(metrics_json: PathLike) -> None:
    """Fail now if the file ``metrics_json`` cannot be written (its folder must exist)."""
    path = Path(metrics_json)
    what = f"--metrics-json {str(path)!r}"
    if path.is_dir():
        raise OutputError(f"{what} is a folder; name a file, e.g. {path / 'm.json'}.")
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputError(f"{what}: {str(path.parent)!r} is a file, not a folder.")
    if not path.parent.is_dir():
        raise OutputError(f"{what}: the folder {str(path.parent)!r} does not exist.")
    _probe(path.parent, what)


def _probe(folder: Path, what: str) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise OutputError(f"{what} cannot be written ({_reason(err)}).") from err


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


class RunLock:
    """An exclusive lock on an output folder for the length of a run (``with RunLock(out):``).

    A second run into the same folder fails at once with :class:`OutputError` instead of
    overwriting the first one's files. The lock is an ``fcntl`` lock on ``<out>/.lock``,
    released when the process ends, however it ends. Where ``fcntl`` is missing (Windows)
    it does nothing.
    """

    def __init__(self, out_dir: PathLike, created: Optional[Path] = None) -> None:
        self.path = Path(os.path.normpath(out_dir)) / ".lock"  # as check_outputs made it
        self.created = created  # the outermost folder this run made: removed if it fails
        self._fd: Optional[int] = None
        self._made = False

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # made here: removed again if the run fails
            fd, self._made = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            fd, self._made = os.open(self.path, os.O_RDWR), False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(
                f"another run is writing into {str(self.path.parent)!r}; wait for it to "
                "finish or give this one another --out."
            ) from None
        self._fd = fd
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
            if kind is not None and self._made:  # a failed run leaves nothing it made
                self.path.unlink(missing_ok=True)
                _remove_made(self.path.parent, self.created)


def save_interrupted(model: LightGCN, out_dir: PathLike) -> None:
    """After a Ctrl-C in the final evaluation: keep the trained model and its history, and
    remove an earlier run's metrics.json, which would not describe this model."""
    out = Path(out_dir)
    model.save(out / "model.npz")
    write_history(model, out)
    (out / "metrics.json").unlink(missing_ok=True)


def finish_training(
    model: LightGCN,
    split: Any,
    out_dir: PathLike,
    ks=(10, 20),
    metrics_json: Optional[PathLike] = None,
    extra: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Evaluate on test (popularity beside), then write the model, history and metrics.

    Evaluation runs before anything is written, so a failure leaves earlier outputs intact;
    every file is written atomically. Returns the metrics payload also saved as
    ``out_dir/metrics.json`` (and ``metrics_json`` if given): LightGCN's test metrics at the
    top level, ``baseline`` for popularity's, plus run facts and ``extra`` (no timings).
    """
    from .experiment import evaluate_test, popularity_metrics

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


def metrics_table(results: dict[str, dict[str, float]], ks=(10, 20)) -> pd.DataFrame:
    """Rows ``Recall@10 ...``, one column per model (e.g. LightGCN, Popularity)."""
    names = {"recall": "Recall", "precision": "Precision", "ndcg": "NDCG", "hit": "HitRate",
             "map": "MAP"}  # fmt: skip
    rows = [(f"{names[m]}@{k}", f"{m}@{k}") for m in METRICS for k in ks]
    return pd.DataFrame(
        {col: [res.get(key, math.nan) for _, key in rows] for col, res in results.items()},
        index=[label for label, _ in rows],
    )


def write_history(model: LightGCN, out_dir: PathLike) -> list[Path]:
    """Write ``history.csv``, ``history.json``, ``timings.json`` and, when matplotlib is
    installed, a plot. Wall-clock times go to ``timings.json`` only, so the other files of
    two identical runs are identical byte for byte."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    history = [_in_order(record) for record in model.history_]
    frame = pd.DataFrame(history)
    written = [out / "history.csv", out / "history.json", out / "timings.json"]
    atomic_write_text(written[0], frame.to_csv(index=False))
    atomic_write_text(written[1], json.dumps(history, indent=1, default=float) + "\n")
    timings = {"epochs": model.timings_, "train_seconds": train_seconds(model)}
    atomic_write_text(written[2], json.dumps(timings, indent=1, default=float) + "\n")
    plot = plot_history(frame, out / "history.png", model.config.metric)
    return written + ([plot] if plot else [])


_FIRST, _LAST = ("epoch", "loss", "val_loss"), ("improved", "lr")


def _in_order(record: dict[str, Any]) -> dict[str, Any]:
    """An epoch record's keys in the order training writes them (epoch, losses, metrics
    sorted, improved, lr), also for records read back from a checkpoint (JSON, sorted), so
    that a resumed run writes the same history files as an uninterrupted one."""
    middle = sorted(k for k in record if k not in _FIRST + _LAST)
    keys = [k for k in _FIRST if k in record] + middle + [k for k in _LAST if k in record]
    return {k: record[k] for k in keys}


def train_seconds(model: LightGCN) -> float:
    """Wall-clock seconds of the epochs trained (validation included)."""
    return float(sum(t["seconds"] for t in getattr(model, "timings_", [])))


def plot_history(frame: pd.DataFrame, path: Path, metric: str) -> Optional[Path]:
    """Loss (train and validation) and the watched metric per epoch; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(frame["epoch"], frame["loss"], label="train BPR loss")
    if "val_loss" in frame:
        ax1.plot(frame["epoch"], frame["val_loss"], label="held-out BPR loss")
    ax1.set_xlabel("epoch")
    ax1.legend()
    if metric in frame:
        points = frame[["epoch", metric]].dropna()
        ax2.plot(points["epoch"], points[metric], label=f"held-out {metric}")
        ax2.set_xlabel("epoch")
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
