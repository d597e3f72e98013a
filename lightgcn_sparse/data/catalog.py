"""What is known about each named dataset: the formats a copy of it comes in, where it is
published, its checksums and published sizes, and where the user cache lives."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .errors import DataFileError
from .table import InteractionTable

__all__ = [
    "BENCHMARK_BASE_URL",
    "BENCHMARK_MIRROR_ENV",
    "CACHE_ENV",
    "CATALOG",
    "CHECKSUMS",
    "DATASETS",
    "DEFAULT_BASE_URL",
    "MIRROR_ENV",
    "NamedDataset",
    "cache_root",
    "default_cache_dir",
]

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
MIRROR_ENV = "LIGHTGCN_SPARSE_MIRROR"  # overrides DEFAULT_BASE_URL
CACHE_ENV = "LIGHTGCN_SPARSE_DATA"  # overrides the default cache directory
#: The LightGCN reference repository's published splits (data/<name>/{train,test}.txt).
BENCHMARK_BASE_URL = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/"
BENCHMARK_MIRROR_ENV = "LIGHTGCN_SPARSE_BENCHMARK_MIRROR"  # overrides BENCHMARK_BASE_URL


@dataclasses.dataclass(frozen=True)
class NamedDataset:
    """A dataset known by name: the formats a copy of it may be in and where it is published.

    ``files`` are paths under the base URL; a ``.zip`` is extracted. The base URL is
    ``base_url``, overridden by the environment variable ``mirror_env`` when that is set.
    ``counts`` are the published users, items, train and test interactions of a fixed
    split, checked after loading since not every file has a known checksum.
    """

    name: str
    formats: tuple[str, ...]  # registry formats a copy may be in, preferred first
    files: tuple[str, ...]  # what to download, relative to the base URL
    base_url: str
    mirror_env: str
    counts: tuple[int, int, int, int] | None = None  # users, items, train, test

    def check_counts(self, table: InteractionTable) -> None:
        """Raise :class:`DataFileError` unless ``table`` has the published :attr:`counts`
        (train includes valid.txt, which is carved out of the published train)."""
        if self.counts is None:
            return
        parts = np.zeros(3, dtype=np.int64)
        if table.parts is not None:
            parts = np.bincount(table.parts, minlength=3)
        found = (table.num_users, table.num_items, int(parts[0] + parts[1]), int(parts[2]))
        if found != self.counts:
            folder = Path(table.source[0]).parent if table.source else Path(self.name)
            raise DataFileError(
                f"{folder}: {self.name} as published has {_counts(self.counts)}, but these "
                f"files have {_counts(found)}; they are not the reference split (to use a "
                f"modified copy, pass {folder} itself as the dataset)"
            )

    def urls(self, base_url: str | None = None) -> list[str]:
        """The download URL of each of :attr:`files`."""
        base = base_url or os.environ.get(self.mirror_env) or self.base_url
        return [base.rstrip("/") + "/" + file for file in self.files]


def _counts(counts: tuple[int, ...]) -> str:
    users, items, train, test = counts
    return f"{users} users, {items} items, {train} train and {test} test interactions"


def _movielens(name: str, *formats: str) -> NamedDataset:
    return NamedDataset(name, formats, (f"{name}.zip",), DEFAULT_BASE_URL, MIRROR_ENV)


def _benchmark(name: str, counts: tuple[int, int, int, int]) -> NamedDataset:
    files = (f"{name}/test.txt", f"{name}/train.txt")  # test.txt first: it has a checksum
    return NamedDataset(
        name, ("benchmark",), files, BENCHMARK_BASE_URL, BENCHMARK_MIRROR_ENV, counts
    )


#: Every named dataset, by name.
CATALOG: dict[str, NamedDataset] = {
    d.name: d
    for d in (
        _movielens("ml-100k", "ml-100k", "recbole"),
        _movielens("ml-1m", "ml-1m"),
        _movielens("ml-latest-small", "movielens-csv"),
        _movielens("ml-25m", "movielens-csv"),
        # Users, items, train and test interactions as the LightGCN paper (Table 1) and
        # the reference repository publish them.
        _benchmark("gowalla", (29858, 40981, 810128, 217242)),
        _benchmark("yelp2018", (31668, 38048, 1237259, 324147)),
        _benchmark("amazon-book", (52643, 91599, 2380730, 603378)),
    )
}
DATASETS = tuple(CATALOG)

#: SHA-256 and size in bytes (None: not checked) of the first file of each named dataset.
#: Source for the GroupLens zips: tensorflow/datasets,
#: tensorflow_datasets/url_checksums/movielens.txt (commit 1c076ac3c19c8ea83e1d1a75e0623c9a
#: 699e0d7c); for the benchmarks' test.txt: the files of the LightGCN reference repository.
CHECKSUMS: dict[str, tuple[str | None, int | None]] = {
    "ml-100k": ("50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", 4924029),
    "ml-1m": ("a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", 5917549),
    "ml-latest-small": (
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        978202,
    ),
    "ml-25m": ("8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa", 261978986),
    "gowalla": ("099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3", None),
    "yelp2018": ("9cd9b37926cd1447a06625ffa7914527573fb097c10cb0bbdb1d1b8ded3742fe", None),
    "amazon-book": ("6250754994dd953b91b48dccdd77a73f318e0634b4757c2abfcc9d33a54ab0f5", None),
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
