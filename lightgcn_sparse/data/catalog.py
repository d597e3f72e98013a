"""What is known about each named dataset: the formats a copy of it comes in, where it is
published, its checksums, and where the user cache lives."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "CATALOG",
    "CHECKSUMS",
    "DATASETS",
    "DEFAULT_BASE_URL",
    "MIRROR_ENV",
    "NamedDataset",
    "cache_root",
    "dataset_urls",
    "default_cache_dir",
]

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
MIRROR_ENV = "LIGHTGCN_SPARSE_MIRROR"  # overrides DEFAULT_BASE_URL
CACHE_ENV = "LIGHTGCN_SPARSE_DATA"  # overrides the default cache directory


@dataclasses.dataclass(frozen=True)
class NamedDataset:
    """A dataset known by name: the formats a copy of it may be in and where it is published.

    ``files`` are paths under the base URL; a ``.zip`` is extracted. The base URL is
    ``base_url``, overridden by the environment variable ``mirror_env`` when that is set.
    """

    name: str
    formats: tuple[str, ...]  # registry formats a copy may be in, preferred first
    files: tuple[str, ...]  # what to download, relative to the base URL
    base_url: str
    mirror_env: str

    def urls(self, base_url: str | None = None) -> list[str]:
        """The download URL of each of :attr:`files`."""
        base = base_url or os.environ.get(self.mirror_env) or self.base_url
        return [base.rstrip("/") + "/" + file for file in self.files]


def _movielens(name: str, *formats: str) -> NamedDataset:
    return NamedDataset(name, formats, (f"{name}.zip",), DEFAULT_BASE_URL, MIRROR_ENV)


#: Every named dataset, by name.
CATALOG: dict[str, NamedDataset] = {
    d.name: d
    for d in (
        _movielens("ml-100k", "ml-100k", "recbole"),
        _movielens("ml-1m", "ml-1m"),
        _movielens("ml-latest-small", "movielens-csv"),
        _movielens("ml-25m", "movielens-csv"),
    )
}
DATASETS = tuple(CATALOG)

#: SHA-256 and size in bytes of the first file of each named dataset. Source for the
#: GroupLens zips: tensorflow/datasets, tensorflow_datasets/url_checksums/movielens.txt
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


def default_cache_dir() -> Path:
    """``$LIGHTGCN_SPARSE_DATA``, else ``$XDG_CACHE_HOME/lightgcn_sparse``, else
    ``~/.cache/lightgcn_sparse``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "lightgcn_sparse"


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir`` if given, else :func:`default_cache_dir`."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def dataset_urls(name: str, base_url: str | None = None) -> list[str]:
    """Where the files of the named dataset ``name`` are downloaded from."""
    return CATALOG[name].urls(base_url)
