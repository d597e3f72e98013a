"""The registry of on-disk formats: one module per format, one entry per module in
:data:`FORMATS`. Detection, :func:`load_directory`, :func:`load_file` and the "looked for"
part of error messages all come from the registry, so adding a format touches nothing else."""

from __future__ import annotations

import os
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

from ..errors import DataFileError, MissingDataFileError
from ..table import InteractionTable
from . import benchmark, delimited, ml1m, ml100k, movielens_csv, recbole
from .base import Format

__all__ = [
    "FORMATS",
    "Format",
    "detect_format",
    "detect_formats",
    "format_of_file",
    "load_directory",
    "load_file",
]

#: Every format, in the order folders are checked; a format without markers reads files.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        ml100k.FORMAT,
        ml1m.FORMAT,
        movielens_csv.FORMAT,
        recbole.FORMAT,
        benchmark.FORMAT,
        delimited.FORMAT,
    )
}


def detect_formats(directory: str | os.PathLike) -> list[str]:
    """Names of every format whose marker files ``directory`` holds, in registry order."""
    directory = Path(directory)
    return [name for name, fmt in FORMATS.items() if fmt.matches(directory)]


def detect_format(directory: str | os.PathLike) -> str | None:
    """The first format of :data:`FORMATS` that ``directory`` holds, or ``None``."""
    found = detect_formats(directory)
    return found[0] if found else None


def looked_for(names: Sequence[str] | None = None) -> list[str]:
    """The marker files of the formats ``names`` (default: every folder format), e.g.
    ``["u.data", "ratings.dat"]``."""
    chosen = [FORMATS[n] for n in (names or FORMATS)]
    return [f.looked_for for f in chosen if f.markers]


def format_of_file(path: str | os.PathLike) -> Format:
    """The format that reads the file ``path``: the first whose markers match its name
    (``u.data``, ``x.inter``, ``train.txt``...), else the generic delimited format."""
    name = Path(path).name
    for fmt in FORMATS.values():
        if any(fnmatchcase(name, marker) for marker in fmt.markers):
            return fmt
    return next(fmt for fmt in FORMATS.values() if not fmt.markers)


def load_file(path: str | os.PathLike, *, min_rating: float | None = None) -> InteractionTable:
    """Load the file ``path`` with :func:`format_of_file`'s format (with the files that
    belong with it, such as ``u.item`` beside ``u.data``)."""
    return format_of_file(path).load(path, min_rating=min_rating)


def load_directory(
    directory: str | os.PathLike, *, min_rating: float | None = None
) -> InteractionTable:
    """Load the one supported layout that ``directory`` holds (see :func:`detect_formats`).

    A folder that holds the files of several formats raises :class:`DataFileError` naming
    them; pass the file to read to :func:`load_file` instead.
    """
    directory = Path(directory)
    found = detect_formats(directory)
    if len(found) == 1:
        return FORMATS[found[0]].load(directory, min_rating=min_rating)
    if found:
        raise DataFileError(several_formats(directory, found))
    if not directory.is_dir():
        raise MissingDataFileError(f"{directory}: no such directory")
    markers = ", ".join(looked_for())
    raise MissingDataFileError(f"{directory}: no dataset found (looked for {markers})")


def describe_formats(names: Sequence[str]) -> str:
    """E.g. ``"ml-100k (u.data) and movielens-csv (ratings.csv)"``."""
    parts = [f"{n} ({FORMATS[n].looked_for})" for n in names]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def several_formats(directory: Path, names: Sequence[str]) -> str:
    """The message for a folder holding the files of several formats."""
    examples = " or ".join(str(FORMATS[n].first_file(directory)) for n in names)
    return (
        f"{directory}: holds the files of several formats: "
        f"{describe_formats(names)}; pass the file to read instead, e.g. {examples}"
    )
