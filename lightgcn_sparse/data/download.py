"""Downloads into the cache: streamed with a SHA-256 check, written to a temporary file and
moved into place only once verified; archives extracted safely."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from .catalog import CATALOG, CHECKSUMS, DATASETS, NamedDataset, cache_root
from .errors import DataFileError, DownloadError
from .formats import FORMATS, detect_formats

__all__ = ["download_dataset", "holds"]


def holds(folder: Path, dataset: NamedDataset) -> list[str]:
    """The formats of ``dataset`` that ``folder`` holds, preferred first."""
    found = detect_formats(folder)
    return [name for name in dataset.formats if name in found]


def download_dataset(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    verify: bool = True,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download the files of the named dataset ``name`` into the cache and return the
    folder ``<cache>/<name>`` (at once if it already holds the dataset).

    Each file is written to a temporary file and moved into place with :func:`os.replace`
    only once verified; a partial or mismatching download is deleted, and the folder
    appears only when complete. The first file is checked against :data:`CHECKSUMS` and a
    fixed split against its published counts (``verify=False`` skips both, for mirrors).
    A ``.zip`` is extracted, refusing absolute paths, ``..`` and links.
    """
    if name not in CATALOG:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}; got {name!r}")
    dataset = CATALOG[name]
    root = cache_root(cache_dir)
    target = root / name
    if holds(target, dataset):
        return target
    digest, size = CHECKSUMS.get(name, (None, None))
    first = PurePosixPath(dataset.files[0]).name
    if verify and digest is None:
        raise DownloadError(f"no known SHA-256 for {first}; pass verify=False to skip the check")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"cannot create the cache directory {root} ({err})") from err
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        for i, (file, url) in enumerate(zip(dataset.files, dataset.urls(base_url))):
            expected = (digest, size) if verify and i == 0 else (None, None)
            label = file if len(dataset.files) > 1 else ""
            _download(url, scratch / PurePosixPath(file).name, expected, progress, timeout, label)
        source = _extract(scratch / first, name) if first.endswith(".zip") else scratch
        usable = holds(source, dataset)
        if not usable:
            raise DownloadError(f"{first} holds no {name} data files")
        if verify and dataset.counts is not None:
            try:
                dataset.check_counts(FORMATS[usable[0]].load(source))
            except DataFileError as err:
                raise DownloadError(f"{err}; the files were deleted") from err
        _install(source, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _download(
    url: str,
    dest: Path,
    expected: tuple[str | None, int | None],
    progress: bool,
    timeout: float,
    label: str,
) -> None:
    """Fetch ``url`` into ``dest`` via a temporary file, checking ``(sha256, size)`` where
    known; errors start with ``label`` when it is not empty."""
    digest, size = expected
    handle, part = tempfile.mkstemp(prefix=f".{dest.name}-", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            got = _fetch(url, out, progress=progress, timeout=timeout, label=label or dest.name)
        if size is not None and got[1] != size:
            raise DownloadError(f"downloaded {got[1]} bytes, expected {size}; the file was deleted")
        if digest is not None and got[0] != digest:
            raise DownloadError(
                f"SHA-256 mismatch: expected {digest}, got {got[0]}; the file was deleted"
            )
        os.replace(part, dest)
    except DownloadError as err:
        if not label:
            raise
        raise DownloadError(f"{label}: {err}") from err
    finally:
        Path(part).unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, out: Any, *, progress: bool, timeout: float, label: str) -> tuple[str, int]:
    """Stream ``url`` into ``out``; return ``(sha256 hex, bytes)``."""
    digest = hashlib.sha256()
    received, total = 0, None
    request = urllib.request.Request(url, headers={"User-Agent": "lightgcn-sparse"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            shown = 0.0
            while True:
                block = response.read(1 << 16)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                received += len(block)
                if progress and time.monotonic() - shown > 0.2:
                    _show_progress(label, received, total)
                    shown = time.monotonic()
    except urllib.error.HTTPError as err:
        raise DownloadError(f"HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise DownloadError(f"cannot reach the server ({err.reason})") from err
    except http.client.IncompleteRead as err:
        raise DownloadError(
            f"connection closed after {received + len(err.partial)} bytes (truncated download); "
            "the file was deleted"
        ) from err
    except (http.client.HTTPException, OSError) as err:
        raise DownloadError(f"download failed after {received} bytes ({err})") from err
    finally:
        if progress and received:
            _show_progress(label, received, total, end=True)
    if total is not None and received != total:
        raise DownloadError(
            f"truncated download: got {received} of {total} bytes; the file was deleted"
        )
    return digest.hexdigest(), received


def _show_progress(label: str, received: int, total: int | None, end: bool = False) -> None:
    mb = received / 1e6
    if total:
        text = (
            f"\rDownloading {label}: {100 * received / total:5.1f}% ({mb:.1f}/{total / 1e6:.1f} MB)"
        )
    else:
        text = f"\rDownloading {label}: {mb:.1f} MB"
    sys.stderr.write(text + ("\n" if end else ""))
    sys.stderr.flush()


def _extract(archive: Path, name: str) -> Path:
    """Extract ``archive`` safely beside itself; return the folder holding the data (its
    ``<name>/`` folder if it has one)."""
    scratch = Path(tempfile.mkdtemp(prefix=".extracted-", dir=archive.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info, archive)
            zf.extractall(scratch)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive.name} is not a valid zip file ({err})") from err
    return scratch / name if (scratch / name).is_dir() else scratch


def _install(source: Path, target: Path) -> None:
    """Move the complete folder ``source`` to ``target`` (which may be an empty folder)."""
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if target.exists():
        raise DownloadError(f"{target} exists but holds no dataset; remove it and retry")
    os.replace(source, target)


def _check_member(info: zipfile.ZipInfo, archive: Path) -> None:
    member = info.filename.replace("\\", "/")
    parts = PurePosixPath(member).parts
    unsafe = (
        member.startswith("/")
        or ".." in parts
        or (parts and ":" in parts[0])
        or stat.S_ISLNK(info.external_attr >> 16)
    )
    if unsafe:
        raise DownloadError(f"{archive.name}: refusing unsafe member {info.filename!r}")
