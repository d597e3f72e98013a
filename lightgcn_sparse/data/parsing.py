"""Shared file reading and column parsing; every failure is a :class:`DataFileError` that
names the file (and the line, where there is one)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .errors import DataFileError, MissingDataFileError

__all__ = [
    "Events",
    "check_file",
    "expect_header",
    "folder_of",
    "is_number",
    "numeric",
    "rating_events",
    "read_first_lines",
    "read_table",
    "read_text",
    "tokens",
]

_INT_TOKEN = r"-?(?:0|[1-9][0-9]*)"


class Events(NamedTuple):
    """Parsed columns, one entry per event, before raw ids are numbered.

    Shapes: every field ``(n,)``; ``ratings`` and ``timestamps`` may be ``None``.
    """

    users: np.ndarray  # raw user ids, int64 or str
    items: np.ndarray  # raw item ids, int64 or str
    ratings: np.ndarray | None = None  # float32
    timestamps: np.ndarray | None = None  # int64


def folder_of(path: str | os.PathLike) -> Path:
    """The folder of a dataset given as the folder itself or as one of its files."""
    path = Path(path)
    return path.parent if path.is_file() else path


def check_file(path: Path) -> Path:
    """``path`` if it is a non-empty regular file, else a :class:`DataFileError`."""
    path = Path(path)
    if not path.exists():
        raise MissingDataFileError(f"{path}: file not found")
    if not path.is_file():
        raise DataFileError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: file is empty")
    return path


def read_text(path: Path, encodings: Sequence[str] = ("utf-8",)) -> str:
    """Whole file as text, trying each encoding in turn."""
    data = check_file(path).read_bytes()
    last: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as err:
            last = err
    assert last is not None  # encodings is never empty
    raise DataFileError(
        f"{path}: cannot decode as {' or '.join(encodings)} "
        f"({last.reason} at byte {last.start}); is this the right file?"
    ) from last


def read_first_lines(path: Path, count: int) -> list[str]:
    """Up to ``count`` first lines of ``path`` as text (undecodable bytes replaced), without
    a BOM or line ends."""
    with open(check_file(path), "rb") as handle:
        raw = [handle.readline() for _ in range(count)]
    lines = [line.decode("utf-8", errors="replace").rstrip("\r\n") for line in raw if line]
    return [lines[0].lstrip("\ufeff"), *lines[1:]] if lines else []


def read_table(
    path: Path,
    *,
    sep: str,
    columns: int | tuple[int, int],
    header: bool,
    source: Any = None,
    dtype: Any = None,
    quoting: int = csv.QUOTE_MINIMAL,
    sep_label: str | None = None,
) -> pd.DataFrame:
    """``pd.read_csv`` whose failures become :class:`DataFileError` naming ``path``.

    ``columns`` is the exact count or an inclusive ``(low, high)`` range. ``source``
    (bytes or text buffer) replaces reading ``path`` itself.
    """
    if source is None:
        check_file(path)
    low, high = (columns, columns) if isinstance(columns, int) else columns
    shown_sep = _sep_name(sep_label or sep)
    try:
        frame = pd.read_csv(
            path if source is None else source,
            sep=sep,
            header=0 if header else None,
            dtype=dtype,
            encoding="utf-8",
            engine="c",
            quoting=quoting,
            keep_default_na=dtype is None,
            na_values=None if dtype is None else [""],
        )
    except pd.errors.EmptyDataError as err:
        raise DataFileError(f"{path}: file is empty") from err
    except pd.errors.ParserError as err:
        raise DataFileError(
            f"{path}: malformed line; expected {_count(low, high)} {shown_sep}-separated "
            f"fields ({_first_line(str(err))})"
        ) from err
    except UnicodeDecodeError as err:
        raise DataFileError(
            f"{path}: not valid UTF-8 text ({err.reason} at byte {err.start})"
        ) from err
    except (ValueError, OverflowError) as err:
        raise DataFileError(f"{path}: cannot parse ({_first_line(str(err))})") from err
    found = frame.shape[1]
    if not low <= found <= high:
        hint = " Is the separator right?" if found == 1 else ""
        raise DataFileError(
            f"{path}: found {found} column(s), expected {_count(low, high)} "
            f"{shown_sep}-separated columns.{hint}"
        )
    if frame.empty:
        raise DataFileError(f"{path}: has no data rows")
    frame.attrs["sep"] = sep_label or sep  # for the hints of numeric() and tokens()
    return frame


def expect_header(frame: pd.DataFrame, names: Sequence[str], path: Path, hint: str = "") -> None:
    """Raise unless the columns of ``frame`` are exactly ``names``; ``hint`` ends the message."""
    found = [str(c).strip() for c in frame.columns]
    if found != list(names):
        raise DataFileError(f"{path}: header is {found}, expected {list(names)}{hint}")


def _count(low: int, high: int) -> str:
    return str(low) if low == high else f"{low} to {high}"


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", "|": "'|'", "::": "'::'"}.get(sep, repr(sep))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def numeric(
    frame: pd.DataFrame, column: Any, label: str, path: Path, first_line: int, integer: bool
) -> np.ndarray:
    """Column as int64 / float64, with an error naming the file, line and value."""
    values = frame[column]
    if values.dtype.kind not in "iuf":
        number = pd.to_numeric(values, errors="coerce")
        bad = (number.isna() & values.notna()).to_numpy()
        _check_rows(
            bad, path, first_line, lambda row: f"{label} {values.iloc[row]!r} is not a number"
        )
        values = number
    _check_rows(values.isna().to_numpy(), path, first_line, lambda row: _missing(label, frame))
    array = values.to_numpy()
    if array.dtype.kind == "f" or not integer:
        array = array.astype(np.float64)
        bad = ~np.isfinite(array)
        _check_rows(
            bad, path, first_line, lambda row: f"{label} {_plain(array[row])} is not finite"
        )
    if not integer:
        return array
    if array.dtype.kind == "f":
        bad = array != np.floor(array)
        _check_rows(
            bad, path, first_line, lambda row: f"{label} {_plain(array[row])} is not an integer"
        )
    return array.astype(np.int64)


def tokens(frame: pd.DataFrame, column: Any, label: str, path: Path, first_line: int) -> np.ndarray:
    """Id column as int64 if every token is a plain integer, else as str (object array)."""
    values = frame[column]
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    _check_rows(missing, path, first_line, lambda row: _missing(label, frame))
    if values.dtype.kind in "iu":
        return values.to_numpy(dtype=np.int64)
    text = values.astype(str).str.strip()
    if text.str.fullmatch(_INT_TOKEN).all():
        try:
            return text.astype(np.int64).to_numpy()
        except (OverflowError, ValueError):
            pass
    return text.to_numpy(dtype=object)


def _check_rows(bad: np.ndarray, path: Path, first_line: int, what: Callable[[int], str]) -> None:
    """Raise for the first row where ``bad`` is true; ``what(row)`` says what is wrong."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFileError(f"{path}: line {row + first_line}: {what(row)}")


def _missing(label: str, frame: pd.DataFrame) -> str:
    message = f"{label} is missing (truncated or malformed line?)"
    sep = frame.attrs.get("sep")  # set by read_table
    if sep is None:
        return message
    shown = "tab" if sep == "\t" else repr(sep)
    return f"{message} (is the separator {shown} used on every line?)"


def _plain(value: Any) -> str:
    """A number as Python prints a float (``inf``, ``1.5``), not as numpy's repr."""
    return repr(float(value))


def is_number(text: str) -> bool:
    """Whether ``text`` parses as a finite float."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def rating_events(
    frame: pd.DataFrame, labels: Sequence[str], path: Path, first_line: int
) -> Events:
    """The four columns ``user, item, rating, timestamp`` of ``frame`` (integer ids, float
    ratings, integer timestamps); ``labels`` name them in error messages."""
    user, item, rating, stamp = frame.columns
    return Events(
        numeric(frame, user, labels[0], path, first_line, integer=True),
        numeric(frame, item, labels[1], path, first_line, integer=True),
        numeric(frame, rating, labels[2], path, first_line, integer=False).astype(np.float32),
        numeric(frame, stamp, labels[3], path, first_line, integer=True),
    )
