"""The :class:`InteractionTable`: (user, item[, rating, timestamp]) events with contiguous ids."""

from __future__ import annotations

import dataclasses
import datetime
import os
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..idmap import IdMap

__all__ = ["PARTS", "InteractionTable", "Interactions"]

#: Values of :attr:`InteractionTable.parts`: train, valid and test.
PARTS = (0, 1, 2)
#: The fields that hold one entry per interaction.
_PER_INTERACTION = ("users", "items", "ratings", "timestamps", "parts")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class InteractionTable:
    """Implicit feedback with contiguous ids: a table of (user, item[, rating, timestamp])
    events, the raw id of every user and item, and optional item metadata.

    Interaction ``k`` is user ``users[k]`` with item ``items[k]``; raw ids are
    ``user_ids[users[k]]`` and ``item_ids[items[k]]``. ``num_users`` / ``num_items`` are
    stored explicitly, so a :meth:`subset` (a train split) keeps the full catalogue.

    ``parts`` records which file of a pre-split dataset each interaction came from (0 train,
    1 valid, 2 test; see the ``benchmark`` format); it is ``None`` for other formats.
    ``source`` lists the files read and ``format`` names their format in the registry
    (:data:`lightgcn_sparse.data.FORMATS`).

    Shapes:
        users, items, ratings, timestamps, parts: ``(num_interactions,)``;
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
    source: tuple[str, ...] = ()  # the files read (a str is taken as one path)
    parts: np.ndarray | None = None  # (n,) int8: 0 train, 1 valid, 2 test, as the files say
    format: str = ""  # registry name of the format read, e.g. "ml-100k"

    def __post_init__(self) -> None:
        source = self.source
        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source or ())
        object.__setattr__(self, "source", tuple(str(p) for p in paths if str(p)))
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
        for arg, dtype in (("ratings", np.float32), ("timestamps", np.int64), ("parts", np.int8)):
            value = getattr(self, arg)
            if value is None:
                continue
            value = np.asarray(value, dtype=dtype)
            if value.shape != users.shape:
                raise ValueError(
                    f"{arg} must have shape {users.shape} like users, got {value.shape}"
                )
            object.__setattr__(self, arg, value)
        if self.parts is not None and not np.isin(self.parts, PARTS).all():
            bad = self.parts[~np.isin(self.parts, PARTS)][0]
            raise ValueError(f"parts must hold 0 (train), 1 (valid) or 2 (test), found {bad}")
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
            f"{type(self).__name__}(name={self.name!r}, num_users={self.num_users}, "
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

    def subset(self, mask_or_index: Any) -> InteractionTable:
        """The interactions selected by a boolean mask or an integer index array.

        The result shares the id mappings, catalogue size and item metadata.
        """
        index = _as_selection(mask_or_index, self.num_interactions)
        columns = {}
        for arg in _PER_INTERACTION:
            value = getattr(self, arg)
            columns[arg] = None if value is None else value[index]
        return dataclasses.replace(self, **columns)

    @cached_property
    def user_map(self) -> IdMap:
        """Raw user ids <-> indices."""
        return IdMap(self.user_ids, "user", self.name)

    @cached_property
    def item_map(self) -> IdMap:
        """Raw item ids <-> indices."""
        return IdMap(self.item_ids, "item", self.name)

    def user_index(self, raw_id: Any) -> Any:
        """Contiguous index of the user whose raw id is ``raw_id`` (``"196"`` and ``196``
        are the same integer id). Raises :class:`UnknownIdError` naming the id if absent."""
        return self.user_map.index(raw_id)

    def item_index(self, raw_id: Any) -> Any:
        """Contiguous index of the item whose raw id is ``raw_id``; see :meth:`user_index`."""
        return self.item_map.index(raw_id)

    def describe(self) -> dict[str, str | int]:
        """A summary for people: an ordered, flat mapping of label to a number or an
        already formatted string, e.g. ``"interactions per user (min / median / max)":
        "20 / 65 / 737"``. :meth:`stats` has the same facts as plain values."""
        stats = self.stats()
        out: dict[str, str | int] = {"name": self.name}
        if self.format:
            out["format"] = self.format
        if self.source:
            out["read"] = _files_phrase(self.source)
        out["users"] = stats["users"]
        out["items"] = stats["items"]
        out["interactions"] = stats["interactions"]
        out["unique (user, item) pairs"] = stats["unique_pairs"]
        out["density"] = f"{100 * stats['density']:.3g} %"
        for kind in ("user", "item"):
            counts = stats[f"interactions_per_{kind}"]
            out[f"interactions per {kind} (min / median / max)"] = _slashed(counts.values())
        if stats["rating_min"] is not None:
            ratings = (stats["rating_min"], stats["rating_mean"], stats["rating_max"])
            out["ratings (min / mean / max)"] = _slashed(ratings)
        if stats["timestamp_min"] is not None:
            first, last = (_date(stats[k]) for k in ("timestamp_min", "timestamp_max"))
            out["time span (UTC)"] = f"{first} to {last}"
        if stats["parts"] is not None:
            parts = stats["parts"]
            out["parts in the files (train / valid / test)"] = _slashed(parts.values())
        out["item metadata"] = "title, year, genres" if self.items_meta is not None else "none"
        return out

    def stats(self) -> dict[str, Any]:
        """Summary statistics as plain values: sizes, density, rating and time ranges,
        activity (``{"min", "median", "max"}`` per user and per item) and, for pre-split
        data, the size of each part."""
        pairs = self.to_csr().nnz
        cells = self.num_users * self.num_items
        per_user = np.bincount(self.users, minlength=self.num_users)
        per_item = np.bincount(self.items, minlength=self.num_items)
        out: dict[str, Any] = {
            "name": self.name,
            "format": self.format,
            "source": list(self.source),
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
            "parts": None,
            "has_items_meta": self.items_meta is not None,
        }
        if self.ratings is not None and self.num_interactions:
            out["rating_min"] = float(self.ratings.min())
            out["rating_max"] = float(self.ratings.max())
            out["rating_mean"] = float(self.ratings.mean(dtype=np.float64))
        if self.timestamps is not None and self.num_interactions:
            out["timestamp_min"] = int(self.timestamps.min())
            out["timestamp_max"] = int(self.timestamps.max())
        if self.parts is not None:
            counts = np.bincount(self.parts, minlength=len(PARTS)).tolist()
            out["parts"] = dict(zip(("train", "valid", "test"), counts))
        return out


#: The former name of :class:`InteractionTable`, kept so that existing code keeps working.
Interactions = InteractionTable


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


def _files_phrase(files: tuple[str, ...]) -> str:
    """``"u.data, u.item from /data/ml-100k"`` when the files share a folder."""
    folders = {os.path.dirname(f) for f in files}
    if len(folders) != 1:
        return ", ".join(files)
    return f"{', '.join(os.path.basename(f) for f in files)} from {folders.pop() or '.'}"


def _slashed(values: Any) -> str:
    """``"20 / 65 / 1,737"``: whole numbers with thousands separators, others to 3 digits."""
    return " / ".join(f"{int(v):,}" if float(v).is_integer() else f"{float(v):.3g}" for v in values)


def _date(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc).date().isoformat()


def _min_median_max(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return {"min": 0, "median": 0.0, "max": 0}
    return {
        "min": int(counts.min()),
        "median": float(np.median(counts)),
        "max": int(counts.max()),
    }
