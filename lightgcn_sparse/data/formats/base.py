"""The :class:`Format` record that each format module fills in for the registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

__all__ = ["Format"]


@dataclasses.dataclass(frozen=True)
class Format:
    """One on-disk layout a dataset can come in.

    ``load(path, *, min_rating=None)`` reads it into an :class:`InteractionTable`.
    A folder is in this format when each of ``markers`` (a file name or a glob pattern)
    matches a regular file in it; a format without markers is never detected from a folder
    and reads single files.
    """

    name: str  # registry key, e.g. "ml-100k"
    markers: tuple[str, ...]  # files that identify a folder of this format, e.g. ("u.data",)
    load: Callable  # load(path, *, min_rating=None) -> InteractionTable
    description: str  # one line, for help and error messages

    def matches(self, folder: Path) -> bool:
        """Whether ``folder`` holds every marker file of this format."""
        if not self.markers or not folder.is_dir():
            return False
        return all(any(p.is_file() for p in folder.glob(m)) for m in self.markers)

    def first_file(self, folder: Path) -> Path:
        """The file of ``folder`` that matches the first marker (the file to name when
        asking a user to pick this format)."""
        return min(p for p in folder.glob(self.markers[0]) if p.is_file())

    @property
    def looked_for(self) -> str:
        """The markers as a phrase, e.g. ``"train.txt + test.txt"``."""
        return " + ".join(self.markers)
