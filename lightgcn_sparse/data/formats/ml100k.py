"""MovieLens 100K as GroupLens publishes it: ``u.data``, ``u.item``, ``u.genre``."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..build import build_table, check_min_rating, make_meta
from ..errors import DataFileError
from ..parsing import folder_of, rating_events, read_table, read_text
from ..table import InteractionTable
from .base import Format

__all__ = ["FORMAT", "ML100K_GENRES", "load_ml100k"]

NAME = "ml-100k"

#: Genre names of ml-100k's 19 flag columns, used when ``u.genre`` is absent.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def load_ml100k(path: str | os.PathLike, *, min_rating: float | None = None) -> InteractionTable:
    """MovieLens 100K as published: ``u.data`` (tab-separated ``user item rating time``),
    ``u.item`` (``|``-separated, latin-1, 19 genre flags) and optionally ``u.genre``.
    ``path`` is their folder or one of the files in it."""
    directory = folder_of(path)
    min_rating = check_min_rating(min_rating)
    data_file, item_file, genre_file = (directory / f for f in ("u.data", "u.item", "u.genre"))
    frame = read_table(data_file, sep="\t", columns=4, header=False, quoting=csv.QUOTE_NONE)
    events = rating_events(frame, ("user id", "item id", "rating", "timestamp"), data_file, 1)
    files, meta = [data_file], None
    if item_file.exists():
        meta = _read_u_item(item_file, _read_u_genre(genre_file))
        files += [f for f in (item_file, genre_file) if f.exists()]
    return build_table(
        events, meta=meta, name=directory.name, files=files, fmt=NAME, min_rating=min_rating
    )


def _read_u_genre(path: Path) -> tuple[str, ...]:
    if not path.exists():
        return ML100K_GENRES
    names: dict[int, str] = {}
    for number, line in enumerate(read_text(path, ("utf-8", "latin-1")).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 2 or not fields[1].strip().isdigit():
            raise DataFileError(f"{path}: line {number}: expected 'name|index', got {line!r}")
        names[int(fields[1])] = fields[0].strip()
    if sorted(names) != list(range(len(names))):
        raise DataFileError(f"{path}: genre indices must be 0..{len(names) - 1}")
    return tuple(names[i] for i in range(len(names)))


def _read_u_item(path: Path, genres: Sequence[str]) -> pd.DataFrame:
    expected = 5 + len(genres)
    ids, titles, years, joined = [], [], [], []
    for number, line in enumerate(read_text(path, ("utf-8", "latin-1")).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != expected:
            hint = " Is the separator '|'?" if len(fields) == 1 else ""
            raise DataFileError(
                f"{path}: line {number}: found {len(fields)} '|'-separated fields, expected "
                f"{expected} (id, title, release date, video date, URL, {len(genres)} genre "
                f"flags).{hint}"
            )
        if not fields[0].strip().isdigit():
            raise DataFileError(f"{path}: line {number}: item id {fields[0]!r} is not an integer")
        flags = fields[5:]
        if any(flag.strip() not in ("0", "1") for flag in flags):
            raise DataFileError(f"{path}: line {number}: genre flags must be 0 or 1")
        ids.append(int(fields[0]))
        titles.append(fields[1])
        date = fields[2].strip()
        years.append(int(date[-4:]) if date[-4:].isdigit() else None)
        joined.append("|".join(g for g, f in zip(genres, flags) if f.strip() == "1"))
    if not ids:
        raise DataFileError(f"{path}: has no data rows")
    meta = make_meta(ids, pd.Series(titles), [None] * len(ids), joined)
    # The year in the title wins; the release date fills in where the title has none.
    fallback = pd.array(years, dtype="Int64")
    meta["year"] = meta["year"].where(meta["year"].notna(), pd.Series(fallback, index=meta.index))
    return meta


FORMAT = Format(
    name=NAME,
    markers=("u.data",),
    load=load_ml100k,
    description="MovieLens 100K: u.data (tab-separated), u.item and u.genre",
)
