"""The graph collaborative-filtering benchmark layout (NGCF, LightGCN, SGL...): Gowalla,
Yelp2018 and Amazon-book as their reference code ships them.

A folder holds ``train.txt``, ``test.txt`` and optionally ``valid.txt``; each line is one
user, ``user item item ...``, space-separated, with 0-based contiguous ids (a line may hold
only the user id). Ids are kept as they are, and the catalogue is ``0..max id`` over all
files, so users or items seen only in test still count.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..build import check_min_rating, filter_min_rating
from ..errors import DataFileError
from ..parsing import Events, check_file, folder_of
from ..table import InteractionTable
from .base import Format

__all__ = ["FORMAT", "PART_FILES", "load_benchmark", "read_user_lines"]

NAME = "benchmark"
#: The file of each part, with its value in :attr:`InteractionTable.parts`.
PART_FILES = (("train.txt", 0), ("valid.txt", 1), ("test.txt", 2))
_OPTIONAL = ("valid.txt",)
_MAX_DIGITS = 18  # every id of at most 18 digits fits in int64


def load_benchmark(path: str | os.PathLike, *, min_rating: float | None = None) -> InteractionTable:
    """``train.txt``, ``valid.txt`` (if present) and ``test.txt`` of the folder ``path`` (or
    of the folder of the file ``path``), with :attr:`InteractionTable.parts` saying which
    file each interaction came from.

    ``user_ids`` is ``arange(num_users)`` and ``item_ids`` is ``arange(num_items)``, where
    ``num_users`` / ``num_items`` are one more than the largest id in any file. There are
    no ratings, so ``min_rating`` must be ``None``.
    """
    directory = folder_of(path)
    min_rating = check_min_rating(min_rating)
    users, items, parts, files = [], [], [], []
    num_users = num_items = 0
    for filename, part in PART_FILES:
        file = directory / filename
        if filename in _OPTIONAL and not file.exists():
            continue
        line_users, user, item = read_user_lines(file)
        files.append(file)
        num_users = max(num_users, int(line_users.max()) + 1)
        num_items = max(num_items, int(item.max()) + 1 if len(item) else 0)
        users.append(user)
        items.append(item)
        parts.append(np.full(len(user), part, dtype=np.int8))
    if num_items == 0:
        raise DataFileError(f"{directory}: train.txt and test.txt hold no interactions")
    events = Events(np.concatenate(users), np.concatenate(items))
    filter_min_rating(events, min_rating, directory)  # no ratings: only None passes
    return InteractionTable(
        users=events.users,
        items=events.items,
        num_users=num_users,
        num_items=num_items,
        user_ids=np.arange(num_users, dtype=np.int64),
        item_ids=np.arange(num_items, dtype=np.int64),
        name=directory.name,
        source=tuple(files),
        parts=np.concatenate(parts),
        format=NAME,
    )


def read_user_lines(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a file of ``user item item ...`` lines, vectorized over the whole file.

    Returns ``(line_users, users, items)``: the user id of every non-blank line, and one
    ``(user, item)`` pair per item listed. A user may have only one line per file.

    Shapes:
        line_users: ``(num_lines,)``; users, items: ``(num_pairs,)``; all int64.
    """
    raw = check_file(path).read_bytes()
    raw = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw  # a UTF-8 byte-order mark
    text = np.frombuffer(raw, dtype=np.uint8)  # (bytes,)
    digit = (text >= ord("0")) & (text <= ord("9"))
    blank = np.isin(text, np.frombuffer(b" \t\r\n", dtype=np.uint8))
    if not (digit | blank).all():
        _bad_token(path, raw, int(np.argmin(digit | blank)))
    edges = np.diff(np.concatenate(([0], digit.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)  # (tokens,) first byte of each id
    lengths = np.flatnonzero(edges == -1) - starts
    if not len(starts):
        raise DataFileError(f"{path}: has no data rows")
    if lengths.max() > _MAX_DIGITS:
        _bad_token(path, raw, int(starts[np.argmax(lengths)]))
    values = np.zeros(len(starts), dtype=np.int64)  # Horner's rule, one digit per pass
    for k in range(int(lengths.max())):
        live = lengths > k
        values[live] = values[live] * 10 + (text[starts[live] + k] - ord("0"))
    line = np.searchsorted(np.flatnonzero(text == ord("\n")), starts)  # (tokens,) 0-based
    first = np.concatenate(([True], line[1:] != line[:-1]))  # the user id of each line
    line_users = values[first]
    _check_unique_users(path, line_users, line[first])
    per_line = np.diff(np.append(np.flatnonzero(first), len(values))) - 1  # items per line
    return line_users, np.repeat(line_users, per_line), values[~first]


def _check_unique_users(path: Path, line_users: np.ndarray, lines: np.ndarray) -> None:
    order = np.argsort(line_users, kind="stable")
    repeated = order[1:][line_users[order[1:]] == line_users[order[:-1]]]
    if len(repeated):
        again = int(repeated.min())
        user = int(line_users[again])
        before = int(lines[np.flatnonzero(line_users == user)[0]])
        raise DataFileError(
            f"{path}: line {lines[again] + 1}: user {user} already has line {before + 1}; "
            "each user must have one line per file"
        )


def _bad_token(path: Path, raw: bytes, at: int) -> None:
    """Raise for the token around byte ``at``, naming its line."""
    start, end = at, at
    while start > 0 and raw[start - 1 : start] not in (b" ", b"\t", b"\r", b"\n"):
        start -= 1
    while end < len(raw) and raw[end : end + 1] not in (b" ", b"\t", b"\r", b"\n"):
        end += 1
    token = raw[start:end].decode("utf-8", errors="replace")
    where = f"{path}: line {_line_number(raw, start)}"
    if token.startswith("-") and token[1:].isdigit():
        raise DataFileError(f"{where}: id {token} is negative; ids must be 0-based")
    if token.isdigit():
        raise DataFileError(f"{where}: id {token} is too large (more than {_MAX_DIGITS} digits)")
    raise DataFileError(
        f"{where}: {token!r} is not an integer id (expected 'user item item ...', space-separated)"
    )


def _line_number(raw: bytes, at: int) -> int:
    return raw.count(b"\n", 0, at) + 1


FORMAT = Format(
    name=NAME,
    markers=("train.txt", "test.txt"),
    load=load_benchmark,
    description="graph-CF benchmark (LightGCN, NGCF): train.txt, test.txt, optional valid.txt",
)
