"""Train / valid / test splits of an :class:`InteractionTable`, deterministic per seed."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .table import _PER_INTERACTION, InteractionTable

__all__ = ["SPLIT_METHODS", "Split", "default_split", "split_interactions"]

SPLIT_METHODS = ("random", "global", "stratified", "temporal", "given")
_DEFAULT_VALID_FRACTION = 0.1  # of each user's train interactions, for method "given"
_DEFAULT_RATIOS = {
    "random": (0.8, 0.1, 0.1),
    "global": (0.8, 0.1, 0.1),
    "stratified": (0.75, 0.25),
}


class Split(NamedTuple):
    """Train / valid / test parts of one :class:`InteractionTable`; all share its mappings.
    ``valid`` is empty for two-way splits."""

    train: InteractionTable
    valid: InteractionTable
    test: InteractionTable


def split_interactions(
    data: InteractionTable,
    method: str,
    *,
    ratios: Sequence[float] | None = None,
    seed: int = 0,
    valid_fraction: float | None = None,
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
        ``"given"``: the parts the files fix (:attr:`InteractionTable.parts`, from the
        ``benchmark`` format): train.txt is train, test.txt is test, valid.txt is valid. With
        no valid.txt, ``valid_fraction`` (default 0.1) of each user's train interactions
        become valid, chosen by ``seed`` and rounded as ``"random"`` does (a user with one
        train interaction keeps it); ``valid_fraction=0`` keeps all of train. Takes no
        ``ratios``.

    ``ratios`` are 2 (train, test) or 3 (train, valid, test) non-negative numbers with
    positive train; they are normalized to sum to 1. The parts partition ``data`` exactly
    and keep its order within each part. The seeded shuffles see the interactions in a
    canonical order (by user, item, timestamp, rating), so the same content split with the
    same seed gives the same parts whatever the order of the lines in the file.
    """
    if not isinstance(data, InteractionTable):
        raise TypeError(
            f"data must be Interactions (an InteractionTable), got {type(data).__name__}"
        )
    if method not in SPLIT_METHODS:
        raise ValueError(f"method must be one of {', '.join(SPLIT_METHODS)}; got {method!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int in [0, inf). Got {seed!r} instead.")
    if method != "given" and valid_fraction is not None:
        raise ValueError(f"valid_fraction is only used by method 'given'; got {valid_fraction!r}")
    if method in ("temporal", "given") and ratios is not None:
        raise ValueError(f"ratios is not used by method {method!r}; got {ratios!r}")
    if method == "temporal":
        part = _temporal_parts(data)
    elif method == "given":
        part = _given_parts(data, valid_fraction, np.random.default_rng(int(seed)))
    else:
        fractions = _check_ratios(ratios if ratios is not None else _DEFAULT_RATIOS[method])
        part = _shuffled_parts(data, method, fractions, np.random.default_rng(int(seed)))
    return Split(*(data.subset(np.flatnonzero(part == k)) for k in range(3)))


def default_split(data: InteractionTable) -> str:
    """The split method that suits ``data``: ``"given"`` when its files fix the parts
    (:attr:`InteractionTable.parts` is set), else ``"random"``."""
    return "given" if data.parts is not None else "random"


def _given_parts(
    data: InteractionTable, valid_fraction: float | None, rng: np.random.Generator
) -> np.ndarray:
    if data.parts is None:
        others = ", ".join(repr(m) for m in SPLIT_METHODS if m != "given")
        raise ValueError(
            f"method 'given' needs the train/test parts that the files fix (the benchmark "
            f"format's train.txt and test.txt), but {data.name or 'this dataset'} has none; "
            f"use one of {others}"
        )
    part = data.parts.astype(np.int64)
    if np.any(part == 1):
        if valid_fraction is not None:
            raise ValueError(
                f"valid_fraction is not used when the files hold a valid part (valid.txt); "
                f"got {valid_fraction!r}"
            )
        return part
    fraction = _check_fraction(valid_fraction)
    if fraction == 0:
        return part
    train = np.flatnonzero(part == 0)
    fractions = np.array([1.0 - fraction, fraction, 0.0])
    carved = _shuffled_parts(data.subset(train), "random", fractions, rng)
    part[train[carved == 1]] = 1
    return part


def _check_fraction(valid_fraction: float | None) -> float:
    if valid_fraction is None:
        return _DEFAULT_VALID_FRACTION
    number = isinstance(valid_fraction, (int, float, np.number))
    if isinstance(valid_fraction, bool) or not number or not 0 <= valid_fraction < 1:
        raise ValueError(
            f"valid_fraction must be a number in [0, 1). Got {valid_fraction!r} instead."
        )
    return float(valid_fraction)


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


def _shuffled_parts(
    data: InteractionTable, method: str, fractions: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The part (0 train, 1 valid, 2 test) of every interaction for the shuffling methods
    ``random``, ``global`` and ``stratified``; independent of the row order of ``data``."""
    canonical = _canonical_order(data)  # (n,) rows in an order that only content decides
    if method == "global":
        groups = np.zeros(data.num_interactions, dtype=np.int64)
    else:
        groups = data.users[canonical]
    order, position, group, count = _shuffled_groups(groups, rng)
    if method == "stratified":
        part_sorted = _stratified_parts(position, group, count, fractions)
    else:
        part_sorted = _recbole_parts(position, group, count, fractions)
    part = np.empty(data.num_interactions, dtype=np.int64)
    part[canonical[order]] = part_sorted
    return part


def _canonical_order(data: InteractionTable) -> np.ndarray:
    """Rows sorted by user, item, timestamp and rating (stable, so duplicates stay)."""
    keys = [k for k in (data.ratings, data.timestamps) if k is not None]
    return np.lexsort((*keys, data.items, data.users))


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


def _temporal_parts(data: InteractionTable) -> np.ndarray:
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


def fold_validation_into_train(split: Split) -> Split:
    """The parts with the validation interactions moved into train (the paper protocol:
    train on all of train, report test); test is unchanged."""
    train, valid, test = split
    if valid.num_interactions == 0:
        return split
    columns = {}
    for arg in _PER_INTERACTION:
        a, b = getattr(train, arg), getattr(valid, arg)
        columns[arg] = None if a is None or b is None else np.concatenate([a, b])
    empty = valid.subset(np.zeros(0, dtype=np.int64))
    return Split(dataclasses.replace(train, **columns), empty, test)
