"""The command line's options and error handling, shared by ``lightgcn-sparse`` and
``torchrun -m lightgcn_sparse.train``: one definition per option, help for every one."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from typing import Any, Callable

import click

from ._checks import InvalidType, InvalidValue, check_device
from .checkpoint import CheckpointError
from .config import PRESETS, Config, preset
from .data import (
    DATASETS,
    SPLIT_METHODS,
    DataFileError,
    DatasetNotFoundError,
    InteractionTable,
    UnknownIdError,
)
from .experiment import PROTOCOLS, DataSpec
from .model import TrainingDiverged
from .recommender import NotFittedError
from .reporting import OutputError

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
    OutputError,
    OSError,
)

#: Set to 1 to see the full traceback of an unexpected error.
DEBUG_ENV = "LIGHTGCN_SPARSE_DEBUG"

#: Option of each Config field / data setting, for errors that name the field.
_OPTION_OF = {"ks": "-k", "protocol": "--protocol", "valid_fraction": "--valid-fraction"}


def _message(err: BaseException) -> str:
    """The text of ``err``; a plain ``KeyError`` is shown without its repr quotes."""
    if type(err) is KeyError and len(err.args) == 1:
        return str(err.args[0])
    return str(err) or type(err).__name__


def friendly_errors(func: Callable) -> Callable:
    """Turn exceptions into one ``Error:`` line and exit code 1, never a traceback.

    A bad setting (an error naming a Config field or data setting) exits 2 naming its
    option. The library's own errors carry messages written for users. Anything else is a
    bug: it is reported in one line too, with the way to get the traceback. A closed pipe
    (``| head``) ends the command quietly.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            _quiet_exit()
        except KeyboardInterrupt:  # before or after training (train_cmd words its own)
            raise interrupted("interrupted.") from None
        except (InvalidValue, InvalidType) as err:
            raise bad_parameter(err) from err
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


def interrupted(message: str) -> click.ClickException:
    """The error a command ends with on Ctrl-C: ``message``, exit code 130 (as shells do)."""
    error = click.ClickException(message)
    error.exit_code = 130
    return error


class _SurvivesClosedPipe:
    """A text stream that, once its reader has gone (``| head``), drops what is written
    instead of raising: a training run keeps going and still saves its model."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self._gone = True
        try:  # so that the interpreter's last flush at exit does not fail either
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def survive_closed_pipes() -> None:
    """Make stdout and stderr drop output once their reader has gone (for long commands:
    a closed pager or ``| head`` must not end a training run before it saves its model)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _SurvivesClosedPipe):
            setattr(sys, name, _SurvivesClosedPipe(stream))


def _quiet_exit() -> None:
    """Stop writing to a closed pipe without a traceback (as Unix tools do)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    raise click.exceptions.Exit(0)


def bad_parameter(err: InvalidValue | InvalidType) -> click.BadParameter:
    """A usage error (exit 2) naming the option of the setting ``err`` is about."""
    name = err.name.split("[", 1)[0]
    hint = _OPTION_OF.get(name, f"--{name.replace('_', '-')}")
    return click.BadParameter(str(err), param_hint=f"'{hint}'")


def options(*decorators: Callable) -> Callable:
    """Apply click options in the order they are listed (top to bottom in ``--help``)."""

    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def data_options(recorded: bool = False) -> Callable:
    """``--dataset --data-dir --min-rating --split --split-seed --valid-fraction --protocol
    --no-download``. With ``recorded``, every one defaults to what the model recorded at
    training (each given option replaces just that setting)."""
    d = DataSpec()

    def default(value: Any) -> Any:
        return None if recorded else value

    def shown(value: Any) -> str:
        return " [default: as the model was trained]" if recorded else f" [default: {value}]"

    return options(
        click.option("--dataset", default=default(d.dataset),
                     help=f"One of {', '.join(DATASETS)}, or a path to a file or folder of "
                     f"a supported format.{shown(d.dataset)}"),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Folder holding the named dataset's files; the only place looked "
                     "at when given."),
        click.option("--min-rating", type=float, default=None,
                     help="Keep only ratings >= this as interactions (e.g. 4 for 'liked')."),
        click.option("--split", "split_method", type=click.Choice(SPLIT_METHODS), default=None,
                     help="How to split train/valid/test: 'given' keeps a benchmark folder's "
                     "train.txt/test.txt; 'random' is per-user 80/10/10."
                     + shown("given for benchmark folders, else random")),
        click.option("--split-seed", type=click.IntRange(min=0), default=default(d.split_seed),
                     help=f"Seed of the split.{shown(d.split_seed)}"),
        click.option("--valid-fraction", type=click.FloatRange(0.0, 0.9),
                     default=default(d.valid_fraction),
                     help="With --split given and no valid.txt: the share of each user's "
                     "training interactions held out for validation"
                     f" (refused where unused).{shown(d.valid_fraction)}"),
        click.option("--protocol", type=click.Choice(PROTOCOLS), default=default(d.protocol),
                     help="honest: validation picks the epoch, test is reported once. refit: "
                     "validation picks the number of epochs, then a fresh model trains on "
                     "train + valid for that many, test once. paper: train on all of train, "
                     "report the best test point (as the LightGCN paper does)."
                     f"{shown(d.protocol)}"),
        click.option("--no-download", is_flag=True, help="Never download the dataset."),
    )  # fmt: skip


def spec_of(values: dict[str, Any]) -> DataSpec:
    """The :class:`DataSpec` of the data options' values (a bad one exits 2)."""
    try:
        return DataSpec(**{k: v for k, v in spec_fields(values).items() if v is not None})
    except (InvalidValue, InvalidType) as err:
        raise bad_parameter(err) from err


def check_valid_fraction(spec: DataSpec, table: InteractionTable | None = None) -> None:
    """Exit 2 when ``--valid-fraction`` was given but the split does not use it
    (:meth:`DataSpec.unused_valid_fraction`). Without ``table`` only what the options show
    is checked (before loading); with it, the data's default split and files too."""
    ctx = click.get_current_context(silent=True)
    given = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    if ctx is None or ctx.get_parameter_source("valid_fraction") not in given:
        return
    why = spec.unused_valid_fraction(table)
    if why:
        raise click.BadParameter(f"it applies to --split given without a validation file "
                                 f"only; {why}.", param_hint="'--valid-fraction'")  # fmt: skip


def spec_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Data options' values renamed to :class:`DataSpec` fields."""
    return {
        "dataset": values.get("dataset"),
        "data_dir": values.get("data_dir"),
        "min_rating": values.get("min_rating"),
        "split": values.get("split_method"),
        "split_seed": values.get("split_seed"),
        "valid_fraction": values.get("valid_fraction"),
        "protocol": values.get("protocol"),
    }


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_CHOICES = {
    "kernel": ["auto", "embedding_bag", "sparse_mm"],
    "sampling": ["interactions", "users"],
    "cuda_graph": ["auto", "on", "off"],
    "propagation_dtype": ["float32", "bfloat16", "float16"],
    "node_order": ["none", "degree", "rcm", "balanced"],
}
#: Config fields the command line does not expose one by one.
_NOT_OPTIONS = ("alpha", "ks", "extra")


def config_options(func: Callable) -> Callable:
    """``--preset``, ``--alpha`` and one option per other Config field, each with the
    field's own description; unset options keep the preset's value."""
    decorators = []
    for name, f in _FIELDS.items():
        if name in _NOT_OPTIONS:
            continue
        kind: Any = click.Choice(_CHOICES[name]) if name in _CHOICES else _click_type(f)
        help_text = f.metadata.get("help", name.replace("_", " "))
        flag = f"--{name.replace('_', '-')}"
        if kind is bool:  # --layer-norm / --no-layer-norm; unset keeps the preset's
            flag, kind = f"{flag}/--no-{flag[2:]}", None
        decorators.append(click.option(flag, type=kind, default=None,
                                       help=f"{help_text} [default: {f.default!r}]"))  # fmt: skip
    decorators.append(click.option("--alpha", type=float, multiple=True,
                                   help="Weight of layer k in the final embedding, once per "
                                   "layer 0..K. [default: 1/(K+1) each]"))  # fmt: skip
    decorators.append(click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)),
                                   default="default", show_default=True,
                                   help="Start from a named configuration (the options given "
                                   "change it): 'cs224w' = the CS224W tutorial's, 'recbole' = "
                                   "RecBole's LightGCN settings."))  # fmt: skip
    return options(*reversed(decorators))(func)


def _click_type(f: dataclasses.Field) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if "int" in kind:
        return int
    if "float" in kind:
        return float
    if "bool" in kind:
        return bool
    return str


def config_of(preset_name: str, alpha, overrides: dict[str, Any]) -> Config:
    """The preset with the given options applied; a bad value names its option (exit 2).
    Both training commands use it, so ``--epochs`` must train at least one epoch."""
    if overrides.get("epochs") is not None and overrides["epochs"] < 1:
        raise click.BadParameter("must be at least 1 to train anything.", param_hint="'--epochs'")
    changes = {k: v for k, v in overrides.items() if v is not None and k in _FIELDS}
    if alpha:
        changes["alpha"] = tuple(alpha)
    try:
        cfg = preset(preset_name, **changes)
        check_device(cfg.device)
    except (InvalidValue, InvalidType) as err:
        raise bad_parameter(err) from err
    return cfg


def k_option(default: tuple[int, ...] = (10, 20)) -> Callable:
    return click.option("-k", "ks", type=click.IntRange(min=1), multiple=True, default=default,
                        show_default=True, help="Cutoff K of the reported metrics "
                        "(Recall@K, NDCG@K, ...); repeatable.")  # fmt: skip


def model_option(func: Callable) -> Callable:
    return click.option("--model", "model_path", type=click.Path(dir_okay=False),
                        default="runs/lightgcn/model.npz", show_default=True,
                        help="A model written by 'train'.")(func)  # fmt: skip


def metrics_json_option(func: Callable) -> Callable:
    return click.option("--metrics-json", type=click.Path(dir_okay=False), default=None,
                        help="Also write the test metrics (and the baseline's) to this JSON "
                        "file.")(func)  # fmt: skip


def train_options(func: Callable) -> Callable:
    """Data, config and output options of training, shared with ``lightgcn_sparse.train``."""
    return options(
        data_options(),
        config_options,
        click.option("--out", type=click.Path(file_okay=False), default="runs/lightgcn",
                     show_default=True, help="Folder for model.npz, metrics.json, history and "
                     "timings (checked before training starts)."),
        metrics_json_option,
        click.option("--checkpoint-every", type=click.IntRange(min=0), default=None,
                     help="Write <out>/checkpoint.npz every N epochs so that an interrupted "
                     "run can be resumed (0: never). [default: 0; with --resume, every "
                     "--eval-every epochs]"),
        click.option("--resume", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="Continue an interrupted run from its checkpoint.npz."),
        click.option("--overwrite", is_flag=True, help="Replace the run already in --out "
                     "(its model.npz or checkpoint.npz); without it such a folder is refused."),
        k_option(),
        click.option("--quiet", is_flag=True, help="No progress output."),
    )(func)  # fmt: skip
