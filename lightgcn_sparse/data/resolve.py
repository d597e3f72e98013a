"""Named datasets: where to look for them, in what order, and what to say when none has it."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
from pathlib import Path, PurePosixPath

from .build import check_min_rating
from .catalog import CATALOG, DATASETS, NamedDataset, cache_root
from .download import download_dataset, holds
from .errors import DataFileError, DatasetNotFoundError, DownloadError
from .formats import (
    FORMATS,
    describe_formats,
    detect_formats,
    load_directory,
    load_file,
    looked_for,
)
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
    """Load a dataset by name (one of :data:`DATASETS`) or from a path.

    A name implies the formats a copy of it may be in (``ml-100k``: ``u.data`` or RecBole's
    ``ml-100k.inter``; ``ml-1m``: ``ratings.dat``; ``ml-latest-small`` and ``ml-25m``:
    ``ratings.csv``), and a folder holding another format raises :class:`DataFileError`
    saying what it holds. An explicit ``data_dir`` is the only place looked at (itself and
    ``data_dir/<name>``). Without one, the name is looked for in the cache
    ``<cache_dir>/<name>`` (see :func:`default_cache_dir`), the ml-100k copy inside an
    installed ``recbole`` (ml-100k only), then downloaded into the cache when ``download``
    is true. A file that is found but malformed raises :class:`DataFileError` at once. If
    every place fails, :class:`DatasetNotFoundError` lists each one and why.

    ``verify`` checks downloads against their SHA-256 and the benchmark splits (gowalla,
    yelp2018, amazon-book) against their published counts, wherever they were found.

    A path that is not a known name is loaded directly: a folder with
    :func:`load_directory` (it must hold one format only), a file with :func:`load_file`.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a dataset name or a path, got {name!r}")
    if not str(name).strip():
        raise ValueError(f"dataset name is empty; give one of {', '.join(DATASETS)}, or a path")
    min_rating = check_min_rating(min_rating)
    if str(name) not in CATALOG:
        if data_dir is not None:
            raise ValueError(
                f"data_dir is only used with a dataset name ({', '.join(DATASETS)}); got the "
                f"path {str(name)!r} and data_dir {str(data_dir)!r}: pass one of them"
            )
        return _load_path(Path(name), min_rating)
    dataset = CATALOG[str(name)]
    request = _Request(dataset, min_rating, verify)
    if data_dir is not None:
        return _load_from_data_dir(request, Path(data_dir))
    attempts: list[str] = []
    root = cache_root(cache_dir)
    found = request.look_in("cache", root / dataset.name, attempts)
    if found is not None:
        return found
    if dataset.name == "ml-100k":
        copy, why = find_recbole_ml100k()
        if copy is not None:
            return request.load(copy, "recbole")
        attempts.append(f"recbole package copy: {why}")
    cause: BaseException | None = None
    urls = " and ".join(dataset.urls(base_url))
    if download:
        try:
            target = download_dataset(
                dataset.name, cache_dir=root, base_url=base_url, verify=verify, progress=progress
            )
        except DownloadError as err:
            attempts.append(f"download {urls}: {err}")
            cause = err
        else:
            return request.load(target, holds(target, dataset)[0])
    else:
        attempts.append(f"download {urls}: disabled (--no-download / download=False)")
    fixes = [f"pass data_dir (--data-dir) pointing at the {_markers(dataset)} of {dataset.name}"]
    if dataset.name == "ml-100k":
        fixes.append("install the bundled copy with `pip install --no-deps recbole==1.2.1`")
    if download:
        fixes.append(
            f"check the network, set {dataset.mirror_env} to a mirror, or fetch {urls} "
            f"yourself into {root / dataset.name}"
        )
    else:
        fixes.append("allow downloads (drop --no-download, or pass download=True)")
    raise DatasetNotFoundError(_not_found(dataset.name, attempts, fixes), attempts) from cause


@dataclasses.dataclass(frozen=True)
class _Request:
    """One :func:`load_dataset` call for a named dataset."""

    dataset: NamedDataset
    min_rating: float | None
    verify: bool  # check the published counts, where the dataset has them

    def load(self, folder: Path, fmt: str) -> InteractionTable:
        """The dataset from ``folder``, read as the registry format ``fmt``."""
        table = FORMATS[fmt].load(folder, min_rating=self.min_rating)
        if self.verify:
            self.dataset.check_counts(table)
        return dataclasses.replace(table, name=self.dataset.name)

    def look_in(self, label: str, folder: Path, attempts: list[str]) -> InteractionTable | None:
        """The dataset from ``folder`` if it holds one of its formats; ``None`` (and a line in
        ``attempts``) if it holds none; a :class:`DataFileError` if it holds another."""
        name = self.dataset.name
        usable = holds(folder, self.dataset)
        if usable:
            return self.load(folder, usable[0])
        found = detect_formats(folder)
        if found:
            fix = (
                f"point data_dir (--data-dir) at a copy of {name}"
                if label == "data_dir"
                else f"remove {folder} so that {name} is downloaded again"
            )
            needed = _or_list([describe_formats([n]) for n in self.dataset.formats])
            raise DataFileError(
                f"{folder}: holds {describe_formats(found)}, but dataset {name!r} comes as "
                f"{needed}; {fix}, or pass {folder} itself as the dataset to load what it holds"
            )
        why = f"no {_markers(self.dataset)} file" if folder.is_dir() else "no such directory"
        attempts.append(f"{label} {folder}: {why}")
        return None


def _load_from_data_dir(request: _Request, data_dir: Path) -> InteractionTable:
    """``data_dir/<name>`` or ``data_dir`` itself, and nowhere else."""
    dataset = request.dataset
    if not data_dir.exists():
        raise DatasetNotFoundError(
            f"data_dir {data_dir} does not exist; an explicit data_dir is the only place "
            f"looked at, so fix the path, or drop data_dir (--data-dir) to use the cache or "
            "a download",
            [f"data_dir {data_dir}: no such directory"],
        )
    if not data_dir.is_dir():
        raise DataFileError(
            f"data_dir {data_dir} is a file, not a folder; to read that file, pass it as the "
            f"dataset instead of {dataset.name!r}"
        )
    attempts: list[str] = []
    for folder in (data_dir / dataset.name, data_dir):
        found = request.look_in("data_dir", folder, attempts)
        if found is not None:
            return found
    fixes = [
        f"put the {_markers(dataset)} of {dataset.name} in {data_dir}",
        "drop data_dir (--data-dir) to use the cache or a download",
    ]
    raise DatasetNotFoundError(_not_found(dataset.name, attempts, fixes), attempts)


def _markers(dataset: NamedDataset) -> str:
    return _or_list(looked_for(dataset.formats))


def _not_found(name: str, attempts: list[str], fixes: list[str]) -> str:
    lines = "\n".join(f"  {i}. {a}" for i, a in enumerate(attempts, 1))
    return f"Could not find dataset {name!r}. Tried:\n{lines}\nTo fix: " + "; or ".join(fixes)


def _or_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _load_path(path: Path, min_rating: float | None) -> InteractionTable:
    if path.is_dir():
        return load_directory(path, min_rating=min_rating)
    if path.is_file():
        return load_file(path, min_rating=min_rating)
    raise DatasetNotFoundError(
        f"{str(path)!r} is neither a known dataset ({', '.join(DATASETS)}) nor an existing "
        "file or directory",
        [f"path {path}: does not exist"],
    )
