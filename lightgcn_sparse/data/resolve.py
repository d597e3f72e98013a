"""Named datasets: where to look for them, in what order, and what to say when none has it."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
from pathlib import Path, PurePosixPath

from .build import check_min_rating
from .catalog import DATASETS, MIRROR_ENV, cache_root, dataset_url
from .download import download_dataset
from .errors import DatasetNotFoundError, DownloadError
from .formats import detect_format, load_directory, looked_for
from .formats.delimited import load_csv
from .formats.recbole import load_recbole
from .table import InteractionTable

__all__ = ["find_recbole_ml100k", "load_dataset"]

_RECBOLE_INTER = PurePosixPath("recbole/dataset_example/ml-100k/ml-100k.inter")


def find_recbole_ml100k() -> tuple[Path | None, str]:
    """Directory of the ml-100k atomic files inside an installed ``recbole`` distribution,
    found from its metadata without importing it; ``(None, why)`` if there is none."""
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or ():
            if PurePosixPath(str(file).replace("\\", "/")) == _RECBOLE_INTER:
                located = Path(str(dist.locate_file(file)))
                if located.is_file():
                    return located.parent, ""
    # find_spec on a top-level package locates it without executing it.
    try:
        spec = importlib.util.find_spec("recbole")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "dataset_example" / "ml-100k"
            if (candidate / "ml-100k.inter").is_file():
                return candidate, ""
    if dist is None and spec is None:
        return None, "recbole is not installed"
    return None, "recbole is installed but has no dataset_example/ml-100k/ml-100k.inter"


def load_dataset(
    name: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    min_rating: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    verify: bool = True,
    progress: bool = True,
) -> InteractionTable:
    """Load a MovieLens dataset by name (one of :data:`DATASETS`) or from a path.

    A known name is looked for, in order, in: ``data_dir`` (or ``data_dir/<name>``), the
    cache ``<cache_dir>/<name>`` (see :func:`default_cache_dir`), the ml-100k copy inside
    an installed ``recbole`` (ml-100k only), then downloaded into the cache when
    ``download`` is true. A file that is found but malformed raises :class:`DataFileError`
    at once. If every source fails, :class:`DatasetNotFoundError` lists each one and why.
    A path that is not a known name is loaded directly: a directory with
    :func:`load_directory`, a ``.inter`` file with :func:`load_recbole`, any other file
    with :func:`load_csv`.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a dataset name or a path, got {name!r}")
    min_rating = check_min_rating(min_rating)
    if str(name) not in DATASETS:
        return _load_path(Path(name), min_rating)
    name = str(name)
    attempts: list[str] = []
    places: list[tuple[str, Path]] = []
    if data_dir is not None:
        places += [("data_dir", Path(data_dir) / name), ("data_dir", Path(data_dir))]
    root = cache_root(cache_dir)
    places.append(("cache", root / name))
    for label, directory in places:
        if detect_format(directory) is not None:
            return _named(load_directory(directory, min_rating=min_rating), name)
        if directory.is_dir():
            why = f"no {_or_list(looked_for())} file"
        else:
            why = "no such directory"
        attempts.append(f"{label} {directory}: {why}")
    if name == "ml-100k":
        found, why = find_recbole_ml100k()
        if found is not None:
            return _named(load_recbole(found, "ml-100k", min_rating=min_rating), name)
        attempts.append(f"recbole package copy: {why}")
    cause: BaseException | None = None
    url = dataset_url(name, base_url)
    if download:
        try:
            target = download_dataset(
                name, cache_dir=root, base_url=base_url, verify=verify, progress=progress
            )
        except DownloadError as err:
            attempts.append(f"download {url}: {err}")
            cause = err
        else:
            return _named(load_directory(target, min_rating=min_rating), name)
    else:
        attempts.append(f"download {url}: disabled (download=False)")
    fixes = ["pass data_dir (--data-dir) pointing at the extracted files"]
    if name == "ml-100k":
        fixes.append("install the bundled copy with `pip install --no-deps recbole==1.2.1`")
    if download:
        fixes.append(
            f"check the network, set {MIRROR_ENV} to a mirror, or fetch {url} yourself and "
            f"unzip it into {root}"
        )
    else:
        fixes.append("allow the download (download=True)")
    lines = "\n".join(f"  {i}. {a}" for i, a in enumerate(attempts, 1))
    message = f"Could not find dataset {name!r}. Tried:\n{lines}\nTo fix: " + "; or ".join(fixes)
    raise DatasetNotFoundError(message, attempts) from cause


def _or_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _named(data: InteractionTable, name: str) -> InteractionTable:
    return dataclasses.replace(data, name=name)


def _load_path(path: Path, min_rating: float | None) -> InteractionTable:
    if path.is_dir():
        return load_directory(path, min_rating=min_rating)
    if path.is_file():
        if path.suffix == ".inter":
            return load_recbole(path.parent, path.stem, min_rating=min_rating)
        return load_csv(path, min_rating=min_rating)
    raise DatasetNotFoundError(
        f"{str(path)!r} is neither a known dataset ({', '.join(DATASETS)}) nor an existing "
        "file or directory",
        [f"path {path}: does not exist"],
    )
