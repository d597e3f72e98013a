"""From parsed columns to an :class:`InteractionTable`: the ``min_rating`` filter, numbering
raw ids from 0, and item metadata aligned to that numbering."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._checks import InvalidType, InvalidValue
from ..titles import YEAR_SUFFIX
from .parsing import Events
from .table import InteractionTable

__all__ = ["build_table", "check_min_rating", "clean_genres", "filter_min_rating", "make_meta"]


def check_min_rating(min_rating: Any) -> float | None:
    """``min_rating`` as a float, or ``None``; a clear error for anything else."""
    if min_rating is None:
        return None
    if isinstance(min_rating, bool) or not isinstance(min_rating, (int, float, np.number)):
        raise InvalidType("min_rating", f"min_rating must be a number or None, got {min_rating!r}")
    if not math.isfinite(float(min_rating)):
        raise InvalidValue("min_rating", f"min_rating must be finite, got {min_rating!r}")
    return float(min_rating)


def filter_min_rating(events: Events, min_rating: float | None, source: Path) -> Events:
    """The events rated at least ``min_rating`` (all of them for ``None``); an error when
    there are no ratings or none is left."""
    if min_rating is None:
        return events
    if events.ratings is None:
        raise ValueError(f"min_rating={min_rating!r} needs ratings, but {source} has none")
    keep = events.ratings >= min_rating
    if not keep.any():
        raise ValueError(f"{source}: no interaction has a rating >= min_rating={min_rating}")
    return Events(*(None if column is None else column[keep] for column in events))


def build_table(
    events: Events,
    *,
    meta: pd.DataFrame | None,
    name: str,
    files: Sequence[Path],
    fmt: str,
    min_rating: float | None,
) -> InteractionTable:
    """Filter by ``min_rating``, number users and items from 0 in sorted raw-id order.

    ``files`` are the files read (the events' file first) and ``fmt`` their format's name.
    """
    users, items, ratings, timestamps = filter_min_rating(events, min_rating, files[0])
    user_codes, user_ids = pd.factorize(users, sort=True)
    item_codes, item_ids = pd.factorize(items, sort=True)
    user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
    return InteractionTable(
        users=user_codes.astype(np.int64),
        items=item_codes.astype(np.int64),
        num_users=len(user_ids),
        num_items=len(item_ids),
        user_ids=user_ids,
        item_ids=item_ids,
        ratings=ratings,
        timestamps=timestamps,
        items_meta=_align_meta(meta, item_ids),
        name=name,
        source=tuple(files),
        format=fmt,
    )


def _align_meta(meta: pd.DataFrame | None, item_ids: np.ndarray) -> pd.DataFrame | None:
    if meta is None:
        return None
    meta = meta[~meta.index.duplicated(keep="first")]
    index = pd.Index(item_ids)
    if meta.index.dtype.kind != index.dtype.kind:  # int ids in one file, text in the other
        meta, index = meta.set_axis(meta.index.astype(str)), index.astype(str)
    aligned = meta.reindex(index)
    return pd.DataFrame(
        {
            "title": aligned["title"].fillna("").astype(str).to_numpy(dtype=object),
            "year": pd.array(aligned["year"].to_numpy(dtype=object), dtype="Int64"),
            "genres": aligned["genres"].fillna("").astype(str).to_numpy(dtype=object),
        },
        index=pd.RangeIndex(len(item_ids)),
    )


def make_meta(ids: Any, raw_titles: pd.Series, years: Any, genres: Sequence[str]) -> pd.DataFrame:
    """Item metadata indexed by raw item id; a ``(1995)`` suffix moves from title to year."""
    raw_titles = pd.Series(np.asarray(raw_titles, dtype=object)).fillna("").astype(str)
    parts = raw_titles.str.extract(r"^(?P<title>.*?)" + YEAR_SUFFIX)
    has_year = parts["title"].notna() & (parts["title"].str.strip() != "")
    titles = raw_titles.str.strip().where(~has_year, parts["title"].str.strip())
    from_title = pd.to_numeric(parts["year"].where(has_year), errors="coerce")
    given = pd.to_numeric(pd.Series(np.asarray(years, dtype=object)), errors="coerce")
    year = given.where(given.notna(), from_title)
    year = year.where(year.isna() | (year == year.round()))
    return pd.DataFrame(
        {
            "title": titles.to_numpy(dtype=object),
            "year": pd.array(year.to_numpy(dtype=object), dtype="Int64"),
            "genres": np.asarray(list(genres), dtype=object),
        },
        index=pd.Index(ids),
    )


def clean_genres(text: str) -> str:
    """Genres as given, except MovieLens's ``(no genres listed)``, which becomes ``""``."""
    text = text.strip()
    return "" if text == "(no genres listed)" else text
