"""The CSV MovieLens releases (ml-latest-small, ml-latest, ml-20m, ml-25m):
``ratings.csv`` and ``movies.csv`` with headers."""

from __future__ import annotations

import os

from ..build import build_table, check_min_rating, clean_genres, make_meta
from ..parsing import expect_header, folder_of, numeric, rating_events, read_table
from ..table import InteractionTable
from .base import Format

__all__ = ["FORMAT", "load_movielens_csv"]

NAME = "movielens-csv"


def load_movielens_csv(
    path: str | os.PathLike, *, min_rating: float | None = None
) -> InteractionTable:
    """ml-latest-small, ml-latest, ml-20m or ml-25m: ``ratings.csv``
    (``userId,movieId,rating,timestamp`` with header) and ``movies.csv``. ``path`` is their
    folder or one of the files in it."""
    directory = folder_of(path)
    min_rating = check_min_rating(min_rating)
    path, movies = directory / "ratings.csv", directory / "movies.csv"
    frame = read_table(path, sep=",", columns=4, header=True)
    columns = ("userId", "movieId", "rating", "timestamp")
    hint = "; a file of another layout is read as a generic CSV under any other name"
    expect_header(frame, columns, path, hint=hint)
    events = rating_events(frame, columns, path, 2)
    del frame
    files, meta = [path], None
    if movies.exists():
        files.append(movies)
        table = read_table(movies, sep=",", columns=3, header=True, dtype=str)
        expect_header(table, ("movieId", "title", "genres"), movies)
        ids = numeric(table, "movieId", "movieId", movies, 2, integer=True)
        genres = table["genres"].fillna("").map(clean_genres)
        meta = make_meta(ids, table["title"], [None] * len(ids), genres)
    return build_table(
        events, meta=meta, name=directory.name, files=files, fmt=NAME, min_rating=min_rating
    )


FORMAT = Format(
    name=NAME,
    markers=("ratings.csv",),
    load=load_movielens_csv,
    description="MovieLens CSV releases (ml-latest-small, ml-25m): ratings.csv and movies.csv",
)
