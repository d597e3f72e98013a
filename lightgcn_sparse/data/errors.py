"""Exceptions raised while reading, finding or downloading datasets."""

from __future__ import annotations

from collections.abc import Sequence

from ..idmap import UnknownIdError  # re-exported: one error for unknown ids everywhere

__all__ = [
    "DataFileError",
    "DatasetNotFoundError",
    "DownloadError",
    "MissingDataFileError",
    "UnknownIdError",
]


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
