"""RecBole atomic files: ``<name>.inter`` and optionally ``<name>.item``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..build import build_table, check_min_rating, clean_genres, make_meta
from ..errors import DataFileError, MissingDataFileError
from ..parsing import Events, check_file, folder_of, numeric, read_table, tokens
from ..table import InteractionTable
from .base import Format

__all__ = ["FORMAT", "load_recbole"]

NAME = "recbole"

_RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def load_recbole(
    path: str | os.PathLike,
    name: str | None = None,
    *,
    min_rating: float | None = None,
) -> InteractionTable:
    """RecBole atomic files ``<name>.inter`` and optionally ``<name>.item``.

    Header fields are ``name:type`` in any order; ``user_id`` and ``item_id`` are required,
    ``rating`` and ``timestamp`` are used when present. ``<name>.item`` supplies
    ``movie_title``, ``release_year`` and ``class`` (or ``genre``; space-separated).
    ``path`` is their folder or one of the files in it. ``name`` defaults to the stem of
    that file, else the folder's name, else the only ``*.inter`` file in the folder.
    """
    directory = folder_of(path)
    min_rating = check_min_rating(min_rating)
    if name is None:
        name = Path(path).stem if Path(path).is_file() else _recbole_name(directory)
    path, item_file = directory / f"{name}.inter", directory / f"{name}.item"
    fields = _recbole_header(path)
    for required in ("user_id", "item_id"):
        if required not in fields:
            raise DataFileError(
                f"{path}: header has no {required} field (found {', '.join(fields) or 'none'})"
            )
    frame = _read_atomic(path, fields)
    users = tokens(frame, "user_id", "user_id", path, 2)
    items = tokens(frame, "item_id", "item_id", path, 2)
    ratings = stamps = None
    if "rating" in fields:
        ratings = numeric(frame, "rating", "rating", path, 2, integer=False).astype(np.float32)
    if "timestamp" in fields:
        stamps = np.floor(numeric(frame, "timestamp", "timestamp", path, 2, integer=False))
        stamps = stamps.astype(np.int64)
    del frame
    files, meta = [path], None
    if item_file.exists():
        meta, files = _read_recbole_item(item_file), [path, item_file]
    events = Events(users, items, ratings, stamps)
    return build_table(events, meta=meta, name=name, files=files, fmt=NAME, min_rating=min_rating)


def _recbole_header(path: Path) -> dict[str, str]:
    """``{"user_id": "user_id:token", ...}`` from a RecBole atomic file's first line."""
    with open(check_file(path), "rb") as handle:
        first = handle.readline()
    try:
        line = first.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path}: header is not valid UTF-8 ({err.reason})") from err
    fields = line.split("\t")
    out: dict[str, str] = {}
    for field in fields:
        name, colon, kind = field.strip().partition(":")
        if not colon or not name or kind not in _RECBOLE_TYPES:
            hint = " Is the file tab-separated?" if len(fields) == 1 else ""
            raise DataFileError(
                f"{path}: header field {field!r} is not of the form 'name:type' with type "
                f"one of {', '.join(_RECBOLE_TYPES)} (RecBole atomic file).{hint}"
            )
        out[name] = field
    return out


def _read_atomic(path: Path, fields: dict[str, str]) -> pd.DataFrame:
    """An atomic file's rows as text columns named after the header's field names."""
    frame = read_table(
        path,
        sep="\t",
        columns=len(fields),
        header=True,
        dtype={f: str for f in fields.values()},
        quoting=csv.QUOTE_NONE,
    )
    frame.columns = list(fields)
    return frame


def _recbole_name(directory: Path) -> str:
    if (directory / f"{directory.name}.inter").exists():
        return directory.name
    found = sorted(p.stem for p in directory.glob("*.inter")) if directory.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise MissingDataFileError(f"{directory}: no RecBole .inter file found")
    raise DataFileError(
        f"{directory}: several .inter files ({', '.join(found)}); pass the one to read, e.g. "
        f"{directory / found[0]}.inter"
    )


def _read_recbole_item(path: Path) -> pd.DataFrame:
    fields = _recbole_header(path)
    if "item_id" not in fields:
        raise DataFileError(f"{path}: header has no item_id field")
    frame = _read_atomic(path, fields)
    ids = tokens(frame, "item_id", "item_id", path, 2)
    empty = pd.Series([""] * len(frame))
    title = next((frame[c] for c in ("movie_title", "title") if c in frame), empty)
    year = next((frame[c] for c in ("release_year", "year") if c in frame), empty)
    genre = next((frame[c] for c in ("class", "genre", "genres") if c in frame), empty)
    genres = genre.fillna("").astype(str).str.split().str.join("|")
    return make_meta(ids, title.fillna(""), year, genres.map(clean_genres))


FORMAT = Format(
    name=NAME,
    markers=("*.inter",),
    load=load_recbole,
    description="RecBole atomic files: <name>.inter and optionally <name>.item",
)
