"""Implicit-feedback datasets: loaders, id mapping, dataset resolution and splits.

Every loader returns an :class:`InteractionTable`: one row per (user, item) event with
contiguous ids. For most formats the catalogue is the set of users and items that occur
in the interactions (after ``min_rating``); raw ids are sorted and numbered from 0, and
item metadata (title, year, genres) is aligned to that numbering. The ``benchmark``
format (Gowalla, Yelp2018, Amazon-book as LightGCN ships them) keeps its 0-based ids and
records which file each interaction came from in :attr:`InteractionTable.parts`.

No dataset file ships with this package. :func:`load_dataset` finds a named one in an
explicit directory, else the user cache, the copy of ml-100k bundled with an installed
``recbole`` distribution, or downloads it (GroupLens zips, the LightGCN repository's
train/test files) with a checksum check.

Modules: :mod:`.table` (the container), :mod:`.formats` (the registry and one module per
on-disk format), :mod:`.catalog` (named datasets), :mod:`.resolve` (where to look),
:mod:`.download`, :mod:`.splits`; :mod:`.parsing` and :mod:`.build` are shared helpers.
"""

from .catalog import (
    BENCHMARK_BASE_URL,
    BENCHMARK_MIRROR_ENV,
    CACHE_ENV,
    CATALOG,
    CHECKSUMS,
    DATASETS,
    DEFAULT_BASE_URL,
    MIRROR_ENV,
    NamedDataset,
    default_cache_dir,
)
from .download import download_dataset
from .errors import (
    DataFileError,
    DatasetNotFoundError,
    DownloadError,
    MissingDataFileError,
    UnknownIdError,
)
from .formats import (
    FORMATS,
    Format,
    detect_format,
    detect_formats,
    load_directory,
    load_file,
)
from .formats.benchmark import load_benchmark
from .formats.delimited import load_csv
from .formats.ml1m import load_ml1m
from .formats.ml100k import load_ml100k
from .formats.movielens_csv import load_movielens_csv
from .formats.recbole import load_recbole
from .resolve import find_recbole_ml100k, load_dataset
from .splits import SPLIT_METHODS, Split, default_split, split_interactions
from .table import Interactions, InteractionTable

__all__ = [
    "BENCHMARK_BASE_URL",
    "BENCHMARK_MIRROR_ENV",
    "CACHE_ENV",
    "CATALOG",
    "CHECKSUMS",
    "DATASETS",
    "DEFAULT_BASE_URL",
    "FORMATS",
    "MIRROR_ENV",
    "DataFileError",
    "DatasetNotFoundError",
    "DownloadError",
    "Format",
    "InteractionTable",
    "Interactions",
    "MissingDataFileError",
    "NamedDataset",
    "SPLIT_METHODS",
    "Split",
    "UnknownIdError",
    "default_cache_dir",
    "default_split",
    "detect_format",
    "detect_formats",
    "download_dataset",
    "find_recbole_ml100k",
    "load_benchmark",
    "load_csv",
    "load_dataset",
    "load_directory",
    "load_file",
    "load_ml100k",
    "load_ml1m",
    "load_movielens_csv",
    "load_recbole",
    "split_interactions",
]
