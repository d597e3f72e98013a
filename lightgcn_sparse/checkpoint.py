"""Safe, atomic ``.npz`` files: nothing is unpickled on load, nothing half-written survives.

A file holds plain numeric or string arrays only (``allow_pickle=False`` on both ends), a
``format`` tag and a format version. Writes go to a temporary file in the target folder,
are flushed to disk, then renamed over the target, so a crash or ``SIGKILL`` mid-write
leaves the previous file intact (a killed process may leave its ``.NAME.*.tmp`` file behind;
it is never read).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Union

import numpy as np

FORMAT = "lightgcn-sparse"
MANIFEST = "fields"  # the names of the other fields, as JSON
VERSION = 1
PathLike = Union[str, "os.PathLike[str]"]


class CheckpointError(ValueError):
    """A file that is not a readable lightgcn-sparse checkpoint of a supported version."""


def _new_file_mode(path: Path) -> int:
    """Permissions for the file written at ``path``: the old file's, else 0o666 & ~umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def _atomic_file(path: Path, binary: bool = True) -> Iterator[IO]:
    """A handle on a temporary file in ``path``'s folder that replaces ``path`` on success.

    On any exception (or ``KeyboardInterrupt``) the temporary file is removed and ``path``
    is left as it was.
    """
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory; give a file name to write.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = _new_file_mode(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # name the file asked for, not its temporary sibling
        raise OSError(err.errno, f"cannot write {str(path)!r}: {err.strerror}") from err
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def as_path(path: Any, name: str = "path") -> Path:
    """``path`` (a str or os.PathLike) as a Path, or a TypeError naming the argument."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike. Got {type(path).__name__}.")
    return Path(path)


def atomic_write_npz(path: PathLike, arrays: dict[str, Any]) -> Path:
    """Write ``arrays`` to ``path`` (exactly that name) atomically; return the path.

    Raises:
        TypeError: a value is an object array (it would need pickle), or ``path`` is not a
            path.
        IsADirectoryError: ``path`` is a directory.
        OSError: the folder cannot be created or written; ``path`` is then unchanged.
    """
    path = as_path(path)
    # The list of fields comes first: a damaged directory that drops entries from its end
    # keeps it, so read_npz notices the fields that went missing.
    names = sorted({"format", "version", *arrays})
    payload = {
        MANIFEST: np.array(json.dumps(names)),
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
    }
    for key, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"checkpoint field {key!r} is an object array; it cannot be saved.")
        payload[key] = arr
    with _atomic_file(path) as fh:
        _write_npz(fh, payload)
    return path


def _write_npz(fh: IO, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed zip timestamps, so equal arrays give equal bytes."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    path = as_path(path)
    with _atomic_file(path, binary=False) as fh:
        fh.write(text)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows it (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_npz(path: PathLike, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read a file written by :func:`atomic_write_npz`, failing with :class:`CheckpointError`.

    Never unpickles: an object array or a pickle file is rejected, not executed.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: truncated, corrupt, not ours, another version, or missing fields.
    """
    path = as_path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"{str(path)!r} {what}.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{str(path)!r} is empty, not a lightgcn-sparse checkpoint.")
    data: dict[str, Any] = {}
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CheckpointError(
                f"{str(path)!r} is a single .npy array, not a lightgcn-sparse checkpoint."
            )
        with loaded as npz:
            for key in npz.files:
                value = npz[key]
                if not isinstance(value, np.ndarray):  # a zip member that is not .npy
                    raise CheckpointError(
                        f"{str(path)!r} is a zip file but not a lightgcn-sparse checkpoint "
                        f"(member {key!r} is not an array)."
                    )
                data[key] = value
    except CheckpointError:
        raise
    except MemoryError:
        raise
    except Exception as err:  # zipfile, zlib, numpy format or pickle refusals: all "corrupt"
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if "Object arrays cannot be loaded" in detail:
            raise CheckpointError(
                f"{str(path)!r} holds an object array, which only unpickling could read; "
                "lightgcn-sparse never unpickles, so it is refused."
            ) from err
        if "pickled" in detail:  # numpy's answer for anything neither .npz nor .npy
            raise CheckpointError(
                f"{str(path)!r} is not a lightgcn-sparse checkpoint: it is neither an .npz "
                "archive nor an .npy array (only unpickling could read it, and lightgcn-sparse "
                "never unpickles)."
            ) from err
        raise CheckpointError(
            f"{str(path)!r} is not a readable lightgcn-sparse checkpoint "
            f"(truncated, corrupt or another kind of file: {type(err).__name__}: {detail})."
        ) from err
    fmt = data.get("format")
    if fmt is None or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise CheckpointError(f"{str(path)!r} is an .npz file but not a lightgcn-sparse one.")
    version = data.get("version")
    try:
        version = int(version) if version is not None and version.dtype.kind in "iu" else None
    except TypeError:  # not a 0-d array
        version = None
    if version != VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format version {version}; this lightgcn-sparse "
            f"reads version {VERSION}. Re-train, or load it with the version that wrote it."
        )
    manifest = data.pop(MANIFEST, None)
    if manifest is not None:  # files written before it existed have none
        try:
            listed = set(json.loads(str(manifest)))
        except (json.JSONDecodeError, TypeError):
            listed = None
        if listed != set(data):
            raise CheckpointError(
                f"{str(path)!r} is damaged: its fields do not match the list it was written "
                f"with (missing {sorted((listed or set()) - set(data))})."
            )
    require_fields(data, path, required)
    return data


def require_fields(data: dict[str, Any], path: PathLike, required: tuple[str, ...]) -> None:
    """Raise :class:`CheckpointError` naming the fields of ``required`` that ``data`` lacks."""
    missing = [key for key in required if key not in data]
    if missing:
        raise CheckpointError(f"{str(path)!r} lacks the field(s) {missing}.")


def to_json_array(obj: Any) -> np.ndarray:
    """A 0-d unicode array holding ``obj`` as JSON (safe to store without pickle)."""
    return np.array(json.dumps(obj, sort_keys=True))


def from_json_array(arr: np.ndarray, path: PathLike = "", field: str = "") -> Any:
    """Inverse of :func:`to_json_array`; a malformed field raises :class:`CheckpointError`."""
    if not isinstance(arr, np.ndarray) or arr.ndim != 0 or arr.dtype.kind != "U":
        raise CheckpointError(f"{str(path)!r}: field {field!r} is not a JSON string.")
    try:
        return json.loads(str(arr))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{str(path)!r}: field {field!r} is not valid JSON.") from err
