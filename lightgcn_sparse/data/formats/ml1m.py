"""MovieLens 1M as GroupLens publishes it: ``ratings.dat`` and ``movies.dat``."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from ..build import build_table, check_min_rating, clean_genres, make_meta
from ..errors import DataFileError
from ..parsing import check_file, folder_of, rating_events, read_table, read_text
from ..table import InteractionTable
from .base import Format

__all__ = ["FORMAT", "load_ml1m"]

NAME = "ml-1m"


def load_ml1m(path: str | os.PathLike, *, min_rating: float | None = None) -> InteractionTable:
    """MovieLens 1M as published: ``ratings.dat`` and ``movies.dat`` (``::``-separated,
    latin-1, no header). ``path`` is their folder or one of the files in it."""
    directory = folder_of(path)
    min_rating = check_min_rating(min_rating)
    path, movies = directory / "ratings.dat", directory / "movies.dat"
    raw = check_file(path).read_bytes().replace(b"::", b"\t")
    frame = read_table(
        path,
        sep="\t",
        columns=4,
        header=False,
        source=io.BytesIO(raw),
        quoting=csv.QUOTE_NONE,
        sep_label="::",
    )
    events = rating_events(frame, ("user id", "movie id", "rating", "timestamp"), path, 1)
    files, meta = [path], None
    if movies.exists():
        meta, files = _read_movies_dat(movies), [path, movies]
    return build_table(
        events, meta=meta, name=directory.name, files=files, fmt=NAME, min_rating=min_rating
    )


def _read_movies_dat(path: Path) -> pd.DataFrame:
    ids, titles, genres = [], [], []
    for number, line in enumerate(read_text(path, ("utf-8", "latin-1")).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 3:
            raise DataFileError(
                f"{path}: line {number}: found {len(fields)} '::'-separated fields, expected 3 "
                "(movie id, title, genres)"
            )
        if not fields[0].strip().isdigit():
            raise DataFileError(f"{path}: line {number}: movie id {fields[0]!r} is not an integer")
        ids.append(int(fields[0]))
        titles.append(fields[1])
        genres.append(clean_genres(fields[2]))
    if not ids:
        raise DataFileError(f"{path}: has no data rows")
    return make_meta(ids, pd.Series(titles), [None] * len(ids), genres)


FORMAT = Format(
    name=NAME,
    markers=("ratings.dat",),
    load=load_ml1m,
    description="MovieLens 1M: ratings.dat and movies.dat ('::'-separated)",
)
