"""Implicit-feedback datasets: MovieLens loaders, id mapping, dataset resolution and splits.

Every loader returns an :class:`Interactions`: one row per (user, item) event with
contiguous ids. The catalogue is the set of users and items that occur in the
interactions (after ``min_rating``); raw ids are sorted and numbered from 0, and item
metadata (title, year, genres) is aligned to that numbering. Movies listed in an item
file but never rated are not part of the catalogue.

No MovieLens file ships with this package. :func:`load_dataset` finds one in an explicit
directory, the user cache, the copy of ml-100k bundled with an installed ``recbole``
distribution, or downloads it from GroupLens with a SHA-256 check.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import http.client
import importlib.metadata
import importlib.util
import io
import math
import os
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .titles import YEAR_SUFFIX

__all__ = [
    "CACHE_ENV",
    "CHECKSUMS",
    "DATASETS",
    "DEFAULT_BASE_URL",
    "MIRROR_ENV",
    "DataFileError",
    "DatasetNotFoundError",
    "DownloadError",
    "Interactions",
    "MissingDataFileError",
    "SPLIT_METHODS",
    "Split",
    "UnknownIdError",
    "default_cache_dir",
    "detect_format",
    "download_dataset",
    "find_recbole_ml100k",
    "load_csv",
    "load_dataset",
    "load_directory",
    "load_ml100k",
    "load_ml1m",
    "load_movielens_csv",
    "load_recbole",
    "split_interactions",
]

DATASETS = ("ml-100k", "ml-1m", "ml-latest-small", "ml-25m")
DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
MIRROR_ENV = "LIGHTGCN_SPARSE_MIRROR"  # overrides DEFAULT_BASE_URL
CACHE_ENV = "LIGHTGCN_SPARSE_DATA"  # overrides the default cache directory

#: SHA-256 and size in bytes of each GroupLens zip. Source: tensorflow/datasets,
#: tensorflow_datasets/url_checksums/movielens.txt
#: (commit 1c076ac3c19c8ea83e1d1a75e0623c9a699e0d7c).
CHECKSUMS: dict[str, tuple[str | None, int | None]] = {
    "ml-100k": ("50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", 4924029),
    "ml-1m": ("a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", 5917549),
    "ml-latest-small": (
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        978202,
    ),
    "ml-25m": ("8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa", 261978986),
}

#: Genre names of ml-100k's 19 flag columns, used when ``u.genre`` is absent.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

_RECBOLE_INTER = PurePosixPath("recbole/dataset_example/ml-100k/ml-100k.inter")
_INT_TOKEN = r"-?(?:0|[1-9][0-9]*)"
_RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


# --------------------------------------------------------------------------- errors


class DataFileError(ValueError):
    """A data file is missing, empty or malformed; the message names the file."""


class MissingDataFileError(DataFileError, FileNotFoundError):
    """A data file does not exist (both a ``ValueError`` and a ``FileNotFoundError``)."""


class DatasetNotFoundError(FileNotFoundError):
    """No source could provide a dataset; ``attempts`` lists each place tried and why."""

    def __init__(self, message: str, attempts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)

    def __str__(self) -> str:
        return str(self.args[0])


class DownloadError(OSError):
    """A download failed, was truncated, or did not match its checksum."""


class UnknownIdError(KeyError, ValueError):
    """A raw user or item id is not in the dataset (both ``KeyError`` and ``ValueError``)."""

    def __str__(self) -> str:
        return str(self.args[0])


# --------------------------------------------------------------------------- Interactions


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Interactions:
    """Implicit feedback with contiguous ids.

    Interaction ``k`` is user ``users[k]`` with item ``items[k]``; raw ids are
    ``user_ids[users[k]]`` and ``item_ids[items[k]]``. ``num_users`` / ``num_items`` are
    stored explicitly, so a :meth:`subset` (a train split) keeps the full catalogue.

    Shapes:
        users, items, ratings, timestamps: ``(num_interactions,)``;
        user_ids: ``(num_users,)``; item_ids: ``(num_items,)``;
        items_meta: ``num_items`` rows, columns ``title`` (str, no year), ``year`` (Int64),
        ``genres`` (str, ``'|'``-joined).
    """

    users: np.ndarray  # (n,) int64 in [0, num_users)
    items: np.ndarray  # (n,) int64 in [0, num_items)
    num_users: int
    num_items: int
    user_ids: np.ndarray  # (num_users,) raw id of each user index, int64 or str
    item_ids: np.ndarray  # (num_items,) raw id of each item index, int64 or str
    ratings: np.ndarray | None = None  # (n,) float32
    timestamps: np.ndarray | None = None  # (n,) int64, seconds since the epoch
    items_meta: pd.DataFrame | None = None  # num_items rows: title, year, genres
    name: str = ""
    source: str = ""  # where the data was read from

    def __post_init__(self) -> None:
        for arg in ("num_users", "num_items"):
            value = getattr(self, arg)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{arg} must be an int in [0, inf). Got {value!r} instead.")
            if value < 0:
                raise ValueError(f"{arg} must be an int in [0, inf). Got {value!r} instead.")
            object.__setattr__(self, arg, int(value))
        users = _index_array(self.users, "users", self.num_users)
        items = _index_array(self.items, "items", self.num_items)
        if users.shape != items.shape:
            raise ValueError(
                f"users and items must have the same length, got {len(users)} and {len(items)}"
            )
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        for arg, count in (("user_ids", self.num_users), ("item_ids", self.num_items)):
            ids = np.asarray(getattr(self, arg))
            if ids.shape != (count,):
                raise ValueError(f"{arg} must have shape ({count},), got {ids.shape}")
            object.__setattr__(self, arg, ids)
        for arg, dtype in (("ratings", np.float32), ("timestamps", np.int64)):
            value = getattr(self, arg)
            if value is None:
                continue
            value = np.asarray(value, dtype=dtype)
            if value.shape != users.shape:
                raise ValueError(
                    f"{arg} must have shape {users.shape} like users, got {value.shape}"
                )
            object.__setattr__(self, arg, value)
        meta = self.items_meta
        if meta is not None:
            if not isinstance(meta, pd.DataFrame):
                raise TypeError(
                    f"items_meta must be a DataFrame or None, got {type(meta).__name__}"
                )
            if len(meta) != self.num_items:
                raise ValueError(
                    f"items_meta must have one row per item ({self.num_items}), got {len(meta)}"
                )

    def __repr__(self) -> str:
        return (
            f"Interactions(name={self.name!r}, num_users={self.num_users}, "
            f"num_items={self.num_items}, num_interactions={self.num_interactions})"
        )

    def __len__(self) -> int:
        return self.num_interactions

    @property
    def num_interactions(self) -> int:
        """Number of events, duplicates included."""
        return int(self.users.shape[0])

    def to_csr(self) -> sp.csr_matrix:
        """``(num_users, num_items)`` float32 matrix of ones; a repeated pair counts once."""
        ones = np.ones(self.num_interactions, dtype=np.float32)
        matrix = sp.csr_matrix(
            (ones, (self.users, self.items)), shape=(self.num_users, self.num_items)
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        matrix.sort_indices()
        return matrix

    def subset(self, mask_or_index: Any) -> Interactions:
        """The interactions selected by a boolean mask or an integer index array.

        The result shares the id mappings, catalogue size and item metadata.
        """
        index = _as_selection(mask_or_index, self.num_interactions)
        return dataclasses.replace(
            self,
            users=self.users[index],
            items=self.items[index],
            ratings=None if self.ratings is None else self.ratings[index],
            timestamps=None if self.timestamps is None else self.timestamps[index],
        )

    @cached_property
    def _user_lookup(self) -> dict[Any, int]:
        return {raw: i for i, raw in enumerate(self.user_ids.tolist())}

    @cached_property
    def _item_lookup(self) -> dict[Any, int]:
        return {raw: i for i, raw in enumerate(self.item_ids.tolist())}

    def user_index(self, raw_id: Any) -> int:
        """Contiguous index of the user whose raw id is ``raw_id`` (``"196"`` and ``196``
        are the same id). Raises :class:`UnknownIdError` naming the id if absent."""
        return _lookup(self._user_lookup, raw_id, "user", self)

    def item_index(self, raw_id: Any) -> int:
        """Contiguous index of the item whose raw id is ``raw_id``; see :meth:`user_index`."""
        return _lookup(self._item_lookup, raw_id, "item", self)

    def describe(self) -> dict[str, Any]:
        """Summary statistics: sizes, density, rating and time ranges, activity."""
        pairs = self.to_csr().nnz
        cells = self.num_users * self.num_items
        per_user = np.bincount(self.users, minlength=self.num_users)
        per_item = np.bincount(self.items, minlength=self.num_items)
        out: dict[str, Any] = {
            "name": self.name,
            "users": self.num_users,
            "items": self.num_items,
            "interactions": self.num_interactions,
            "unique_pairs": int(pairs),
            "density": pairs / cells if cells else 0.0,
            "interactions_per_user": _min_median_max(per_user),
            "interactions_per_item": _min_median_max(per_item),
            "rating_min": None,
            "rating_max": None,
            "rating_mean": None,
            "timestamp_min": None,
            "timestamp_max": None,
            "has_items_meta": self.items_meta is not None,
        }
        if self.ratings is not None and self.num_interactions:
            out["rating_min"] = float(self.ratings.min())
            out["rating_max"] = float(self.ratings.max())
            out["rating_mean"] = float(self.ratings.mean(dtype=np.float64))
        if self.timestamps is not None and self.num_interactions:
            out["timestamp_min"] = int(self.timestamps.min())
            out["timestamp_max"] = int(self.timestamps.max())
        return out


def _index_array(values: Any, arg: str, bound: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{arg} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{arg} must hold integers, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= bound:
        bad = low if low < 0 else high
        raise ValueError(f"{arg} must lie in [0, {bound}), found {bad}")
    return array


def _as_selection(mask_or_index: Any, n: int) -> np.ndarray:
    index = np.asarray(mask_or_index)
    if index.dtype == bool:
        if index.shape != (n,):
            raise ValueError(
                f"mask_or_index as a boolean mask must have shape ({n},), got {index.shape}"
            )
        return np.flatnonzero(index)
    if index.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(index.dtype, np.integer) or index.ndim != 1:
        raise TypeError(
            "mask_or_index must be a boolean mask or a 1-D integer index, "
            f"got dtype {index.dtype} with shape {index.shape}"
        )
    if index.min() < 0 or index.max() >= n:
        bad = index.min() if index.min() < 0 else index.max()
        raise ValueError(f"mask_or_index must lie in [0, {n}), found {bad}")
    return index.astype(np.int64, copy=False)


def _lookup(table: dict[Any, int], raw_id: Any, kind: str, data: Interactions) -> int:
    candidates = [raw_id]
    if isinstance(raw_id, str) and raw_id.strip().lstrip("-").isdigit():
        candidates.append(int(raw_id.strip()))
    elif isinstance(raw_id, (int, np.integer)) and not isinstance(raw_id, bool):
        candidates.append(str(int(raw_id)))
    for candidate in candidates:
        try:
            return table[candidate]
        except (KeyError, TypeError):
            continue
    where = f" of {data.name}" if data.name else ""
    count = data.num_users if kind == "user" else data.num_items
    raise UnknownIdError(f"unknown {kind} id {raw_id!r}: not among the {count} {kind}s{where}")


def _min_median_max(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return {"min": 0, "median": 0.0, "max": 0}
    return {
        "min": int(counts.min()),
        "median": float(np.median(counts)),
        "max": int(counts.max()),
    }


# --------------------------------------------------------------------------- building


def _check_min_rating(min_rating: Any) -> float | None:
    if min_rating is None:
        return None
    if isinstance(min_rating, bool) or not isinstance(min_rating, (int, float, np.number)):
        raise TypeError(f"min_rating must be a number or None, got {min_rating!r}")
    if not math.isfinite(float(min_rating)):
        raise ValueError(f"min_rating must be finite, got {min_rating!r}")
    return float(min_rating)


def _build(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray | None,
    timestamps: np.ndarray | None,
    *,
    meta: pd.DataFrame | None,
    name: str,
    source: Path,
    min_rating: float | None,
) -> Interactions:
    """Filter by ``min_rating``, number users and items from 0 in sorted raw-id order."""
    if min_rating is not None:
        if ratings is None:
            raise ValueError(f"min_rating={min_rating!r} needs ratings, but {source} has none")
        keep = ratings >= min_rating
        users, items, ratings = users[keep], items[keep], ratings[keep]
        timestamps = None if timestamps is None else timestamps[keep]
        if not len(users):
            raise ValueError(f"{source}: no interaction has a rating >= min_rating={min_rating}")
    user_codes, user_ids = pd.factorize(users, sort=True)
    item_codes, item_ids = pd.factorize(items, sort=True)
    user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
    return Interactions(
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
        source=str(source),
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


def _make_meta(ids: Any, raw_titles: pd.Series, years: Any, genres: Sequence[str]) -> pd.DataFrame:
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


# --------------------------------------------------------------------------- file reading


def _check_file(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise MissingDataFileError(f"{path}: file not found")
    if not path.is_file():
        raise DataFileError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: file is empty")
    return path


def _read_text(path: Path, encodings: Sequence[str] = ("utf-8",)) -> str:
    """Whole file as text, trying each encoding in turn."""
    data = _check_file(path).read_bytes()
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


def _read_table(
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
        _check_file(path)
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
    return frame


def _count(low: int, high: int) -> str:
    return str(low) if low == high else f"{low} to {high}"


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", "|": "'|'", "::": "'::'"}.get(sep, repr(sep))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _numeric(
    frame: pd.DataFrame, column: Any, label: str, path: Path, first_line: int, integer: bool
) -> np.ndarray:
    """Column as int64 / float64, with an error naming the file, line and value."""
    values = frame[column]
    if values.dtype.kind not in "iuf":
        number = pd.to_numeric(values, errors="coerce")
        bad = number.isna() & values.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataFileError(
                f"{path}: line {row + first_line}: {label} {values.iloc[row]!r} is not a number"
            )
        values = number
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataFileError(
            f"{path}: line {row + first_line}: {label} is missing (truncated or malformed line?)"
        )
    array = values.to_numpy()
    if integer:
        if array.dtype.kind == "f":
            if not np.all(np.isfinite(array)) or np.any(array != np.floor(array)):
                row = int(np.flatnonzero(~np.isfinite(array) | (array != np.floor(array)))[0])
                raise DataFileError(
                    f"{path}: line {row + first_line}: {label} {array[row]!r} is not an integer"
                )
        return array.astype(np.int64)
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        row = int(np.flatnonzero(~np.isfinite(array))[0])
        raise DataFileError(
            f"{path}: line {row + first_line}: {label} {array[row]!r} is not finite"
        )
    return array


def _tokens(
    frame: pd.DataFrame, column: Any, label: str, path: Path, first_line: int
) -> np.ndarray:
    """Id column as int64 if every token is a plain integer, else as str (object array)."""
    values = frame[column]
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataFileError(
            f"{path}: line {row + first_line}: {label} is missing (truncated or malformed line?)"
        )
    if values.dtype.kind in "iu":
        return values.to_numpy(dtype=np.int64)
    text = values.astype(str).str.strip()
    if text.str.fullmatch(_INT_TOKEN).all():
        try:
            return text.astype(np.int64).to_numpy()
        except (OverflowError, ValueError):
            pass
    return text.to_numpy(dtype=object)


# --------------------------------------------------------------------------- loaders


def load_ml100k(directory: str | os.PathLike, *, min_rating: float | None = None) -> Interactions:
    """MovieLens 100K as published: ``u.data`` (tab-separated ``user item rating time``),
    ``u.item`` (``|``-separated, latin-1, 19 genre flags) and optionally ``u.genre``."""
    directory = Path(directory)
    min_rating = _check_min_rating(min_rating)
    path = directory / "u.data"
    frame = _read_table(path, sep="\t", columns=4, header=False, quoting=csv.QUOTE_NONE)
    users = _numeric(frame, 0, "user id", path, 1, integer=True)
    items = _numeric(frame, 1, "item id", path, 1, integer=True)
    ratings = _numeric(frame, 2, "rating", path, 1, integer=False).astype(np.float32)
    stamps = _numeric(frame, 3, "timestamp", path, 1, integer=True)
    meta = None
    if (directory / "u.item").exists():
        meta = _read_u_item(directory / "u.item", _read_u_genre(directory / "u.genre"))
    return _build(
        users,
        items,
        ratings,
        stamps,
        meta=meta,
        name=directory.name,
        source=directory,
        min_rating=min_rating,
    )


def _read_u_genre(path: Path) -> tuple[str, ...]:
    if not path.exists():
        return ML100K_GENRES
    names: dict[int, str] = {}
    for number, line in enumerate(_read_text(path, ("utf-8", "latin-1")).splitlines(), 1):
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
    for number, line in enumerate(_read_text(path, ("utf-8", "latin-1")).splitlines(), 1):
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
    meta = _make_meta(ids, pd.Series(titles), [None] * len(ids), joined)
    # The year in the title wins; the release date fills in where the title has none.
    fallback = pd.array(years, dtype="Int64")
    meta["year"] = meta["year"].where(meta["year"].notna(), pd.Series(fallback, index=meta.index))
    return meta


def load_ml1m(directory: str | os.PathLike, *, min_rating: float | None = None) -> Interactions:
    """MovieLens 1M as published: ``ratings.dat`` and ``movies.dat`` (``::``-separated,
    latin-1, no header)."""
    directory = Path(directory)
    min_rating = _check_min_rating(min_rating)
    path = directory / "ratings.dat"
    raw = _check_file(path).read_bytes().replace(b"::", b"\t")
    frame = _read_table(
        path,
        sep="\t",
        columns=4,
        header=False,
        source=io.BytesIO(raw),
        quoting=csv.QUOTE_NONE,
        sep_label="::",
    )
    users = _numeric(frame, 0, "user id", path, 1, integer=True)
    items = _numeric(frame, 1, "movie id", path, 1, integer=True)
    ratings = _numeric(frame, 2, "rating", path, 1, integer=False).astype(np.float32)
    stamps = _numeric(frame, 3, "timestamp", path, 1, integer=True)
    meta = None
    if (directory / "movies.dat").exists():
        meta = _read_movies_dat(directory / "movies.dat")
    return _build(
        users,
        items,
        ratings,
        stamps,
        meta=meta,
        name=directory.name,
        source=directory,
        min_rating=min_rating,
    )


def _read_movies_dat(path: Path) -> pd.DataFrame:
    ids, titles, genres = [], [], []
    for number, line in enumerate(_read_text(path, ("utf-8", "latin-1")).splitlines(), 1):
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
        genres.append(_clean_genres(fields[2]))
    if not ids:
        raise DataFileError(f"{path}: has no data rows")
    return _make_meta(ids, pd.Series(titles), [None] * len(ids), genres)


def _clean_genres(text: str) -> str:
    text = text.strip()
    return "" if text == "(no genres listed)" else text


def load_movielens_csv(
    directory: str | os.PathLike, *, min_rating: float | None = None
) -> Interactions:
    """ml-latest-small, ml-latest, ml-20m or ml-25m: ``ratings.csv``
    (``userId,movieId,rating,timestamp`` with header) and ``movies.csv``."""
    directory = Path(directory)
    min_rating = _check_min_rating(min_rating)
    path = directory / "ratings.csv"
    frame = _read_table(path, sep=",", columns=4, header=True)
    _expect_header(frame, ("userId", "movieId", "rating", "timestamp"), path)
    users = _numeric(frame, "userId", "userId", path, 2, integer=True)
    items = _numeric(frame, "movieId", "movieId", path, 2, integer=True)
    ratings = _numeric(frame, "rating", "rating", path, 2, integer=False).astype(np.float32)
    stamps = _numeric(frame, "timestamp", "timestamp", path, 2, integer=True)
    del frame
    meta = None
    movies = directory / "movies.csv"
    if movies.exists():
        table = _read_table(movies, sep=",", columns=3, header=True, dtype=str)
        _expect_header(table, ("movieId", "title", "genres"), movies)
        ids = _numeric(table, "movieId", "movieId", movies, 2, integer=True)
        genres = table["genres"].fillna("").map(_clean_genres)
        meta = _make_meta(ids, table["title"], [None] * len(ids), genres)
    return _build(
        users,
        items,
        ratings,
        stamps,
        meta=meta,
        name=directory.name,
        source=directory,
        min_rating=min_rating,
    )


def _expect_header(frame: pd.DataFrame, names: Sequence[str], path: Path) -> None:
    found = [str(c).strip() for c in frame.columns]
    if found != list(names):
        raise DataFileError(f"{path}: header is {found}, expected {list(names)}")


def _recbole_header(path: Path) -> dict[str, str]:
    """``{"user_id": "user_id:token", ...}`` from a RecBole atomic file's first line."""
    text = _check_file(path)
    with open(text, "rb") as handle:
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


def load_recbole(
    directory: str | os.PathLike,
    name: str | None = None,
    *,
    min_rating: float | None = None,
) -> Interactions:
    """RecBole atomic files ``<name>.inter`` and optionally ``<name>.item``.

    Header fields are ``name:type`` in any order; ``user_id`` and ``item_id`` are required,
    ``rating`` and ``timestamp`` are used when present. ``<name>.item`` supplies
    ``movie_title``, ``release_year`` and ``class`` (or ``genre``; space-separated).
    ``name`` defaults to the directory name, or the only ``*.inter`` file in it.
    """
    directory = Path(directory)
    min_rating = _check_min_rating(min_rating)
    if name is None:
        name = _recbole_name(directory)
    path = directory / f"{name}.inter"
    fields = _recbole_header(path)
    for required in ("user_id", "item_id"):
        if required not in fields:
            raise DataFileError(
                f"{path}: header has no {required} field (found {', '.join(fields) or 'none'})"
            )
    dtype = {field: str for field in fields.values()}
    frame = _read_table(
        path, sep="\t", columns=len(fields), header=True, dtype=dtype, quoting=csv.QUOTE_NONE
    )
    frame.columns = list(fields)
    users = _tokens(frame, "user_id", "user_id", path, 2)
    items = _tokens(frame, "item_id", "item_id", path, 2)
    ratings = stamps = None
    if "rating" in fields:
        ratings = _numeric(frame, "rating", "rating", path, 2, integer=False).astype(np.float32)
    if "timestamp" in fields:
        stamps = np.floor(_numeric(frame, "timestamp", "timestamp", path, 2, integer=False))
        stamps = stamps.astype(np.int64)
    del frame
    meta = None
    if (directory / f"{name}.item").exists():
        meta = _read_recbole_item(directory / f"{name}.item")
    return _build(
        users,
        items,
        ratings,
        stamps,
        meta=meta,
        name=name,
        source=directory,
        min_rating=min_rating,
    )


def _recbole_name(directory: Path) -> str:
    if (directory / f"{directory.name}.inter").exists():
        return directory.name
    found = sorted(p.stem for p in directory.glob("*.inter")) if directory.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise MissingDataFileError(f"{directory}: no RecBole .inter file found")
    raise DataFileError(f"{directory}: several .inter files ({', '.join(found)}); pass name")


def _read_recbole_item(path: Path) -> pd.DataFrame:
    fields = _recbole_header(path)
    if "item_id" not in fields:
        raise DataFileError(f"{path}: header has no item_id field")
    frame = _read_table(
        path,
        sep="\t",
        columns=len(fields),
        header=True,
        dtype={f: str for f in fields.values()},
        quoting=csv.QUOTE_NONE,
    )
    frame.columns = list(fields)
    ids = _tokens(frame, "item_id", "item_id", path, 2)
    empty = pd.Series([""] * len(frame))
    title = next((frame[c] for c in ("movie_title", "title") if c in frame), empty)
    year = next((frame[c] for c in ("release_year", "year") if c in frame), empty)
    genre = next((frame[c] for c in ("class", "genre", "genres") if c in frame), empty)
    genres = genre.fillna("").astype(str).str.split().str.join("|")
    return _make_meta(ids, title.fillna(""), year, genres.map(_clean_genres))


def _read_header_guess(path: Path, sep: str) -> list[str]:
    text = _check_file(path)
    with open(text, "rb") as handle:
        first = handle.readline().decode("utf-8", errors="replace").lstrip("\ufeff")
    return next(csv.reader([first], delimiter=sep[0])) if len(sep) == 1 else first.split(sep)


_HEADER_NAMES = {
    "user", "users", "userid", "user_id", "item", "items", "itemid", "item_id", "movie",
    "movieid", "movie_id", "rating", "ratings", "score", "timestamp", "time", "ts",
}  # fmt: skip


def load_csv(
    path: str | os.PathLike,
    sep: str = ",",
    header: int | str | None = "infer",
    *,
    min_rating: float | None = None,
    name: str | None = None,
) -> Interactions:
    """A delimited file of ``user,item[,rating[,timestamp]]``, by position.

    ``header``: ``0`` (first line is a header), ``None`` (no header) or ``"infer"``: the first
    line is a header when its fields are known column names (``user``, ``userId``,
    ``item_id``, ``rating``...) or when its rating/timestamp field is not a number.
    User and item ids are kept as integers when every one is a plain integer, else as str.
    More than 4 columns is an error (drop extra columns first), never silently ignored.
    """
    path = Path(path)
    min_rating = _check_min_rating(min_rating)
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"sep must be a non-empty str, got {sep!r}")
    if header == "infer":
        first = [f.strip().lower() for f in _read_header_guess(path, sep)]
        numeric_tail = all(_is_number(f) for f in first[2:4])
        has_header = bool(first) and (
            all(f in _HEADER_NAMES for f in first[:2]) or not numeric_tail
        )
    elif header is None:
        has_header = False
    elif header == 0 and not isinstance(header, bool):
        has_header = True
    else:
        raise ValueError(f"header must be 0, None or 'infer', got {header!r}")
    frame = _read_table(path, sep=sep, columns=(2, 4), header=has_header, dtype=str)
    first_line = 2 if has_header else 1
    columns = list(frame.columns)
    users = _tokens(frame, columns[0], "user", path, first_line)
    items = _tokens(frame, columns[1], "item", path, first_line)
    ratings = stamps = None
    if len(columns) > 2:
        ratings = _numeric(frame, columns[2], "rating", path, first_line, integer=False)
        ratings = ratings.astype(np.float32)
    if len(columns) > 3:
        stamps = _numeric(frame, columns[3], "timestamp", path, first_line, integer=True)
    return _build(
        users,
        items,
        ratings,
        stamps,
        meta=None,
        name=name or path.stem,
        source=path,
        min_rating=min_rating,
    )


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


_MARKERS = (
    ("u.data", "ml-100k"),
    ("ratings.dat", "ml-1m"),
    ("ratings.csv", "movielens-csv"),
)


def detect_format(directory: str | os.PathLike) -> str | None:
    """``"ml-100k"``, ``"ml-1m"``, ``"movielens-csv"``, ``"recbole"`` or ``None``, by which
    files ``directory`` holds."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    for marker, kind in _MARKERS:
        if (directory / marker).is_file():
            return kind
    if any(directory.glob("*.inter")):
        return "recbole"
    return None


def load_directory(
    directory: str | os.PathLike, *, min_rating: float | None = None
) -> Interactions:
    """Load whichever supported layout ``directory`` holds (see :func:`detect_format`)."""
    directory = Path(directory)
    kind = detect_format(directory)
    if kind == "ml-100k":
        return load_ml100k(directory, min_rating=min_rating)
    if kind == "ml-1m":
        return load_ml1m(directory, min_rating=min_rating)
    if kind == "movielens-csv":
        return load_movielens_csv(directory, min_rating=min_rating)
    if kind == "recbole":
        return load_recbole(directory, min_rating=min_rating)
    if not directory.is_dir():
        raise MissingDataFileError(f"{directory}: no such directory")
    raise MissingDataFileError(
        f"{directory}: no dataset found (looked for u.data, ratings.dat, ratings.csv, *.inter)"
    )


# --------------------------------------------------------------------------- resolution


def default_cache_dir() -> Path:
    """``$LIGHTGCN_SPARSE_DATA``, else ``$XDG_CACHE_HOME/lightgcn_sparse``, else
    ``~/.cache/lightgcn_sparse``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "lightgcn_sparse"


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def find_recbole_ml100k() -> tuple[Path | None, str]:
    """Directory of the ml-100k atomic files inside an installed ``recbole`` distribution,
    found from its metadata without importing it; ``(None, why)`` if there is none."""
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or ():
            if PurePosixPath(str(file).replace("\\", "/")) == _RECBOLE_INTER:
                located = Path(str(dist.locate_file(file)))
                if located.is_file():
                    return located.parent, ""
    # find_spec on a top-level package locates it without executing it.
    try:
        spec = importlib.util.find_spec("recbole")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "dataset_example" / "ml-100k"
            if (candidate / "ml-100k.inter").is_file():
                return candidate, ""
    if dist is None and spec is None:
        return None, "recbole is not installed"
    return None, "recbole is installed but has no dataset_example/ml-100k/ml-100k.inter"


def load_dataset(
    name: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    min_rating: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    verify: bool = True,
    progress: bool = True,
) -> Interactions:
    """Load a MovieLens dataset by name (one of :data:`DATASETS`) or from a path.

    A known name is looked for, in order, in: ``data_dir`` (or ``data_dir/<name>``), the
    cache ``<cache_dir>/<name>`` (see :func:`default_cache_dir`), the ml-100k copy inside
    an installed ``recbole`` (ml-100k only), then downloaded into the cache when
    ``download`` is true. A file that is found but malformed raises :class:`DataFileError`
    at once. If every source fails, :class:`DatasetNotFoundError` lists each one and why.
    A path that is not a known name is loaded directly: a directory with
    :func:`load_directory`, a ``.inter`` file with :func:`load_recbole`, any other file
    with :func:`load_csv`.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a dataset name or a path, got {name!r}")
    min_rating = _check_min_rating(min_rating)
    if str(name) not in DATASETS:
        return _load_path(Path(name), min_rating)
    name = str(name)
    attempts: list[str] = []
    places: list[tuple[str, Path]] = []
    if data_dir is not None:
        places += [("data_dir", Path(data_dir) / name), ("data_dir", Path(data_dir))]
    root = _cache_root(cache_dir)
    places.append(("cache", root / name))
    for label, directory in places:
        if detect_format(directory) is not None:
            return _named(load_directory(directory, min_rating=min_rating), name)
        if directory.is_dir():
            why = "no u.data, ratings.dat, ratings.csv or *.inter file"
        else:
            why = "no such directory"
        attempts.append(f"{label} {directory}: {why}")
    if name == "ml-100k":
        found, why = find_recbole_ml100k()
        if found is not None:
            return _named(load_recbole(found, "ml-100k", min_rating=min_rating), name)
        attempts.append(f"recbole package copy: {why}")
    cause: BaseException | None = None
    url = _url(name, base_url)
    if download:
        try:
            target = download_dataset(
                name, cache_dir=root, base_url=base_url, verify=verify, progress=progress
            )
        except DownloadError as err:
            attempts.append(f"download {url}: {err}")
            cause = err
        else:
            return _named(load_directory(target, min_rating=min_rating), name)
    else:
        attempts.append(f"download {url}: disabled (download=False)")
    fixes = ["pass data_dir (--data-dir) pointing at the extracted files"]
    if name == "ml-100k":
        fixes.append("install the bundled copy with `pip install --no-deps recbole==1.2.1`")
    if download:
        fixes.append(
            f"check the network, set {MIRROR_ENV} to a mirror, or fetch {url} yourself and "
            f"unzip it into {root}"
        )
    else:
        fixes.append("allow the download (download=True)")
    lines = "\n".join(f"  {i}. {a}" for i, a in enumerate(attempts, 1))
    message = f"Could not find dataset {name!r}. Tried:\n{lines}\nTo fix: " + "; or ".join(fixes)
    raise DatasetNotFoundError(message, attempts) from cause


def _named(data: Interactions, name: str) -> Interactions:
    return dataclasses.replace(data, name=name)


def _load_path(path: Path, min_rating: float | None) -> Interactions:
    if path.is_dir():
        return load_directory(path, min_rating=min_rating)
    if path.is_file():
        if path.suffix == ".inter":
            return load_recbole(path.parent, path.stem, min_rating=min_rating)
        return load_csv(path, min_rating=min_rating)
    raise DatasetNotFoundError(
        f"{str(path)!r} is neither a known dataset ({', '.join(DATASETS)}) nor an existing "
        "file or directory",
        [f"path {path}: does not exist"],
    )


def _url(name: str, base_url: str | None) -> str:
    base = base_url or os.environ.get(MIRROR_ENV) or DEFAULT_BASE_URL
    return base.rstrip("/") + f"/{name}.zip"


def download_dataset(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    verify: bool = True,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``<base_url>/<name>.zip``, check its SHA-256, extract it into the cache and
    return ``<cache>/<name>``.

    The zip is written to a temporary file and moved into place with :func:`os.replace`
    only once verified; a partial or mismatching download is deleted. Extraction refuses
    absolute paths, ``..`` and links. ``verify=False`` skips the checksum (for mirrors).
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}; got {name!r}")
    root = _cache_root(cache_dir)
    target = root / name
    if detect_format(target) is not None:
        return target
    digest, size = CHECKSUMS.get(name, (None, None))
    if verify and digest is None:
        raise DownloadError(f"no known SHA-256 for {name}.zip; pass verify=False to skip the check")
    url = _url(name, base_url)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"cannot create the cache directory {root} ({err})") from err
    archive = root / f"{name}.zip"
    if not (archive.is_file() and verify and _sha256(archive) == digest):
        handle, part = tempfile.mkstemp(prefix=f".{name}-", suffix=".zip.part", dir=root)
        try:
            with os.fdopen(handle, "wb") as out:
                got = _fetch(url, out, progress=progress, timeout=timeout, label=f"{name}.zip")
            if verify and size is not None and got[1] != size:
                raise DownloadError(
                    f"downloaded {got[1]} bytes, expected {size}; the file was deleted"
                )
            if verify and got[0] != digest:
                raise DownloadError(
                    f"SHA-256 mismatch: expected {digest}, got {got[0]}; the file was deleted"
                )
            os.replace(part, archive)
        finally:
            Path(part).unlink(missing_ok=True)
    try:
        _extract(archive, root, name)
    finally:
        archive.unlink(missing_ok=True)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, out: Any, *, progress: bool, timeout: float, label: str) -> tuple[str, int]:
    """Stream ``url`` into ``out``; return ``(sha256 hex, bytes)``."""
    digest = hashlib.sha256()
    received, total = 0, None
    request = urllib.request.Request(url, headers={"User-Agent": "lightgcn-sparse"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            shown = 0.0
            while True:
                block = response.read(1 << 16)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                received += len(block)
                if progress and time.monotonic() - shown > 0.2:
                    _show_progress(label, received, total)
                    shown = time.monotonic()
    except urllib.error.HTTPError as err:
        raise DownloadError(f"HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise DownloadError(f"cannot reach the server ({err.reason})") from err
    except http.client.IncompleteRead as err:
        raise DownloadError(
            f"connection closed after {received + len(err.partial)} bytes (truncated download); "
            "the file was deleted"
        ) from err
    except (http.client.HTTPException, OSError) as err:
        raise DownloadError(f"download failed after {received} bytes ({err})") from err
    finally:
        if progress and received:
            _show_progress(label, received, total, end=True)
    if total is not None and received != total:
        raise DownloadError(
            f"truncated download: got {received} of {total} bytes; the file was deleted"
        )
    return digest.hexdigest(), received


def _show_progress(label: str, received: int, total: int | None, end: bool = False) -> None:
    mb = received / 1e6
    if total:
        text = (
            f"\rDownloading {label}: {100 * received / total:5.1f}% ({mb:.1f}/{total / 1e6:.1f} MB)"
        )
    else:
        text = f"\rDownloading {label}: {mb:.1f} MB"
    sys.stderr.write(text + ("\n" if end else ""))
    sys.stderr.flush()


def _extract(archive: Path, root: Path, name: str) -> Path:
    """Extract ``archive`` safely into ``root/name`` via a temporary directory."""
    target = root / name
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(info, archive)
                zf.extractall(scratch)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{archive.name} is not a valid zip file ({err})") from err
        source = scratch / name if (scratch / name).is_dir() else scratch
        if detect_format(source) is None:
            raise DownloadError(f"{archive.name} holds no {name} data files")
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if target.exists():
            raise DownloadError(f"{target} exists but holds no dataset; remove it and retry")
        if source == scratch:
            os.replace(scratch, target)
        else:
            os.replace(source, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _check_member(info: zipfile.ZipInfo, archive: Path) -> None:
    member = info.filename.replace("\\", "/")
    parts = PurePosixPath(member).parts
    unsafe = (
        member.startswith("/")
        or ".." in parts
        or (parts and ":" in parts[0])
        or stat.S_ISLNK(info.external_attr >> 16)
    )
    if unsafe:
        raise DownloadError(f"{archive.name}: refusing unsafe member {info.filename!r}")


# --------------------------------------------------------------------------- splits

SPLIT_METHODS = ("random", "global", "stratified", "temporal")
_DEFAULT_RATIOS = {
    "random": (0.8, 0.1, 0.1),
    "global": (0.8, 0.1, 0.1),
    "stratified": (0.75, 0.25),
}


class Split(NamedTuple):
    """Train / valid / test parts of one :class:`Interactions`; all share its mappings.
    ``valid`` is empty for two-way splits."""

    train: Interactions
    valid: Interactions
    test: Interactions


def split_interactions(
    data: Interactions,
    method: str,
    *,
    ratios: Sequence[float] | None = None,
    seed: int = 0,
) -> Split:
    """Split ``data`` into train / valid / test, deterministically for a given ``seed``.

    Methods:
        ``"random"``: per user, shuffle their interactions and cut by ``ratios`` (default
        0.8/0.1/0.1), as RecBole's ``RS`` with ``group_by=user``: valid and test get
        ``floor(ratio * n)`` each, raised to 1 when ``0 < ratio * n < 1`` while train keeps
        more than one, and train gets the rest.
        ``"global"``: shuffle all interactions and cut them with the same rounding (the
        CS224W LightGCN tutorial's edge split).
        ``"stratified"``: per user, shuffle and keep the ones whose rank ``k / n`` (k from 1)
        is ``<= ratios[0]`` for train, as Microsoft Recommenders'
        ``python_stratified_split`` (default 0.75/0.25, so a user with a single
        interaction is all test). Two ratios mean (train, test); three add valid.
        ``"temporal"``: per user, sort by timestamp (ties by position in ``data``); the last
        interaction is test, the one before is valid. A user with 2 interactions gets no
        valid, a user with 1 keeps it in train. Needs timestamps; takes no ``ratios``.

    ``ratios`` are 2 (train, test) or 3 (train, valid, test) non-negative numbers with
    positive train; they are normalized to sum to 1. The parts partition ``data`` exactly
    and keep its order within each part.
    """
    if not isinstance(data, Interactions):
        raise TypeError(f"data must be Interactions, got {type(data).__name__}")
    if method not in SPLIT_METHODS:
        raise ValueError(f"method must be one of {', '.join(SPLIT_METHODS)}; got {method!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int in [0, inf). Got {seed!r} instead.")
    if method == "temporal":
        if ratios is not None:
            raise ValueError(f"ratios is not used by method 'temporal'; got {ratios!r}")
        part = _temporal_parts(data)
    else:
        fractions = _check_ratios(ratios if ratios is not None else _DEFAULT_RATIOS[method])
        rng = np.random.default_rng(int(seed))
        if method == "global":
            groups = np.zeros(data.num_interactions, dtype=np.int64)
        else:
            groups = data.users
        order, position, group, count = _shuffled_groups(groups, rng)
        if method == "stratified":
            part_sorted = _stratified_parts(position, group, count, fractions)
        else:
            part_sorted = _recbole_parts(position, group, count, fractions)
        part = np.empty(data.num_interactions, dtype=np.int64)
        part[order] = part_sorted
    return Split(*(data.subset(np.flatnonzero(part == k)) for k in range(3)))


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    try:
        values = np.asarray(ratios, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"ratios must be a sequence of numbers, got {ratios!r}") from err
    if values.ndim != 1 or len(values) not in (2, 3):
        raise ValueError(f"ratios must hold 2 (train, test) or 3 numbers, got {ratios!r}")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values[0] <= 0:
        raise ValueError(f"ratios must be finite, >= 0, with train > 0; got {ratios!r}")
    if len(values) == 2:
        values = np.array([values[0], 0.0, values[1]])
    return values / values.sum()


def _shuffled_groups(
    groups: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order grouping rows by ``groups``, randomly within each group, then as
    :func:`_positions`."""
    key = rng.permutation(len(groups))  # (n,) a random rank for every row
    order = np.lexsort((key, groups))
    return (order, *_positions(groups[order]))


def _positions(sorted_groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows sorted by group: each row's 0-based position in its group and its group's
    number (0..G-1), and the size of each group."""
    n = len(sorted_groups)
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]) if n else []
    sizes = np.diff(np.r_[starts, n]).astype(np.int64)  # (G,)
    group_of_row = np.repeat(np.arange(len(sizes)), sizes)  # (n,)
    position = np.arange(n) - np.asarray(starts, dtype=np.int64)[group_of_row]  # (n,)
    return position, group_of_row, sizes


def _recbole_parts(
    position: np.ndarray, group: np.ndarray, count: np.ndarray, ratios: np.ndarray
) -> np.ndarray:
    """Vectorized RecBole ``_calcu_split_ids`` over groups of size ``count``: parts after
    the first are rounded down, then raised to 1 when ``0 < ratio * n < 1`` while the
    first keeps more than one."""
    total = count.astype(np.float64)  # (G,)
    sizes = np.stack([np.floor(r * total) for r in ratios], axis=1).astype(np.int64)  # (G, 3)
    sizes[:, 0] = count - sizes[:, 1:].sum(axis=1)
    for i in range(1, len(ratios)):
        exact = ratios[-i] * total
        bump = (sizes[:, 0] > 1) & (exact > 0) & (exact < 1)
        sizes[bump, -i] += 1
        sizes[bump, 0] -= 1
    bounds = np.cumsum(sizes, axis=1)[:, :-1]  # (G, 2)
    return (position[:, None] >= bounds[group]).sum(axis=1)


def _stratified_parts(
    position: np.ndarray, group: np.ndarray, count: np.ndarray, ratios: np.ndarray
) -> np.ndarray:
    """Microsoft Recommenders' rule: rank ``(position + 1) / count`` against cumulative
    ratios; the last part takes everything above the previous threshold."""
    rank = (position + 1) / count[group]
    thresholds = np.cumsum(ratios)[:-1]
    return np.searchsorted(thresholds, rank, side="left")


def _temporal_parts(data: Interactions) -> np.ndarray:
    if data.timestamps is None:
        raise ValueError(
            f"method 'temporal' needs timestamps, but {data.name or 'this dataset'} has none"
        )
    n = data.num_interactions
    order = np.lexsort((np.arange(n), data.timestamps, data.users))
    position, group, sizes = _positions(data.users[order])
    count = sizes[group]
    from_end = count - 1 - position
    part_sorted = np.zeros(n, dtype=np.int64)
    part_sorted[(from_end == 0) & (count >= 2)] = 2
    part_sorted[(from_end == 1) & (count >= 3)] = 1
    part = np.empty(n, dtype=np.int64)
    part[order] = part_sorted
    return part
