"""Any delimited file of ``user,item[,rating[,timestamp]]``, by position."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..build import build_table, check_min_rating
from ..parsing import Events, is_number, numeric, read_first_lines, read_table, tokens
from ..table import InteractionTable
from .base import Format

__all__ = ["FORMAT", "load_csv"]

NAME = "delimited"

_HEADER_NAMES = {
    "user", "users", "userid", "user_id", "item", "items", "itemid", "item_id", "movie",
    "movieid", "movie_id", "rating", "ratings", "score", "timestamp", "time", "ts",
    "customer", "customerid", "customer_id", "client", "client_id", "visitor", "visitorid",
    "visitor_id", "product", "productid", "product_id", "sku", "article", "article_id",
    "song", "track", "track_id", "book", "book_id", "artist", "artist_id", "asin", "uid", "iid",
}  # fmt: skip
_HEADER_PEEK = 20  # lines after the first that decide whether it is a header


def load_csv(
    path: str | os.PathLike,
    sep: str = ",",
    header: int | str | None = "infer",
    *,
    min_rating: float | None = None,
    name: str | None = None,
) -> InteractionTable:
    """A delimited file of ``user,item[,rating[,timestamp]]``, by position.

    ``header``: ``0`` (first line is a header), ``None`` (no header) or ``"infer"``: the first
    line is a header when its first two fields are known column names (``user``, ``userId``,
    ``item_id``, ``customer``, ``product``...), or when its user/item fields are not integers
    while those of the following lines are (``uid,iid``), or (ids not all integers) when its
    rating/timestamp field is not a number. A first line of integer ids like the lines after
    it is data, so a bad rating there is reported, not taken for a header.
    User and item ids are kept as integers when every one is a plain integer, else as str.
    More than 4 columns is an error (drop extra columns first), never silently ignored.
    """
    path = Path(path)
    min_rating = check_min_rating(min_rating)
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"sep must be a non-empty str, got {sep!r}")
    if header == "infer":
        has_header = _infer_header(path, sep)
    elif header is None:
        has_header = False
    elif header == 0 and not isinstance(header, bool):
        has_header = True
    else:
        raise ValueError(f"header must be 0, None or 'infer', got {header!r}")
    frame = read_table(path, sep=sep, columns=(2, 4), header=has_header, dtype=str)
    first_line = 2 if has_header else 1
    columns = list(frame.columns)
    users = tokens(frame, columns[0], "user", path, first_line)
    items = tokens(frame, columns[1], "item", path, first_line)
    ratings = stamps = None
    if len(columns) > 2:
        ratings = numeric(frame, columns[2], "rating", path, first_line, integer=False)
        ratings = ratings.astype(np.float32)
    if len(columns) > 3:
        stamps = numeric(frame, columns[3], "timestamp", path, first_line, integer=True)
    events = Events(users, items, ratings, stamps)
    return build_table(
        events, meta=None, name=name or path.stem, files=[path], fmt=NAME, min_rating=min_rating
    )


def _split_line(line: str, sep: str) -> list[str]:
    if len(sep) == 1:
        try:
            return next(csv.reader([line], delimiter=sep))
        except csv.Error:  # not text (a stray carriage return): read_table will say so
            pass
    return line.split(sep)


def _infer_header(path: Path, sep: str) -> bool:
    """Whether the first line is a header: its first two fields are known column names, its
    rating/timestamp field is not a number, or its user/item fields are not integers while
    those of the next lines (up to :data:`_HEADER_PEEK`) all are."""
    lines = [_split_line(line, sep) for line in read_first_lines(path, 1 + _HEADER_PEEK)]
    lines = [[field.strip().lower() for field in fields] for fields in lines if any(fields)]
    if not lines:
        return False
    first, rest = lines[0], lines[1:]
    if all(f in _HEADER_NAMES for f in first[:2]):
        return True
    integer_rest = bool(rest) and all(_integer_ids(r) for r in rest)
    if integer_rest and _integer_ids(first):
        return False  # integer ids like every line after it: data, even with a bad rating
    return not all(is_number(f) for f in first[2:4]) or (integer_rest and not _integer_ids(first))


def _integer_ids(fields: list[str]) -> bool:
    return len(fields) >= 2 and all(f.lstrip("-").isdigit() for f in fields[:2])


FORMAT = Format(
    name=NAME,
    markers=(),
    load=load_csv,
    description="any delimited file of user,item[,rating[,timestamp]] (header inferred)",
)
