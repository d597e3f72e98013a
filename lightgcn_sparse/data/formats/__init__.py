"""The registry of on-disk formats: one module per format, one entry per module in
:data:`FORMATS`. Detection, :func:`load_directory` and the "looked for" part of error
messages all come from the registry, so adding a format touches nothing else."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import MissingDataFileError
from ..table import InteractionTable
from . import benchmark, delimited, ml1m, ml100k, movielens_csv, recbole
from .base import Format

__all__ = ["FORMATS", "Format", "detect_format", "detect_formats", "load_directory"]

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


def load_directory(
    directory: str | os.PathLike, *, min_rating: float | None = None
) -> InteractionTable:
    """Load whichever supported layout ``directory`` holds (see :func:`detect_format`)."""
    directory = Path(directory)
    kind = detect_format(directory)
    if kind is not None:
        return FORMATS[kind].load(directory, min_rating=min_rating)
    if not directory.is_dir():
        raise MissingDataFileError(f"{directory}: no such directory")
    raise MissingDataFileError(
        f"{directory}: no dataset found (looked for {', '.join(looked_for())})"
    )
