"""The fields of a saved model, written and checked field by field (never unpickled).

A model file is an ``.npz`` written by :func:`~lightgcn_sparse.checkpoint.atomic_write_npz`:

* ``kind``: which model wrote it (absent in files of version 0.1: LightGCN);
* ``config``: JSON; ``shape``: ``(num_users, num_items)`` of the trained catalogue;
* ``train_indptr``, ``train_indices``: the training interactions (CSR);
* ``known_indptr``, ``known_indices``: the interactions the model knows, when they differ
  from the training ones (after ``partial_fit_*``);
* ``user_ids``, ``item_ids``: raw ids (int64, or str with ``ids_are_text``);
* ``fingerprint``: a hash of the training interactions; ``dataset``: a name;
* model-specific arrays (LightGCN: ``embedding``), and ``summary`` (JSON: best epoch, history);
* ``extra_users`` / ``extra_user_rows`` (and items): factors folded in after training.

Every field read back is checked (dtype, shape, range, finiteness); a bad one raises
:class:`~lightgcn_sparse.checkpoint.CheckpointError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import torch

from .checkpoint import CheckpointError, from_json_array, to_json_array
from .idmap import IdMap
from .user_items import UserItemIndex

_INT_TOKEN = re.compile(r"-?(?:0|[1-9][0-9]*)")


def fingerprint(train: UserItemIndex) -> str:
    """A short hash naming the training interactions, stored with models and checkpoints."""
    h = hashlib.sha256()
    h.update(np.array([train.num_users, train.num_items], dtype=np.int64).tobytes())
    h.update(train.indptr.cpu().numpy().astype(np.int64).tobytes())
    h.update(train.indices.cpu().numpy().astype(np.int64).tobytes())
    return "sha256:" + h.hexdigest()[:16]


def catalogue_arrays(model: Any) -> dict[str, Any]:
    """The fields every model file has (see the module docstring)."""
    arrays: dict[str, Any] = {
        "kind": np.array(model.kind),
        "shape": np.array([model.trained_users_, model.trained_items_], dtype=np.int64),
        "dataset": np.array(getattr(model, "dataset", "")),
        "fingerprint": np.array(model.fingerprint_),
        "train_indptr": model.trained_interactions_.indptr.cpu().numpy(),
        "train_indices": model.trained_interactions_.indices.cpu().numpy(),
        "user_ids": model.user_map.ids,
        "item_ids": model.item_map.ids,
        "ids_are_text": np.array([not model.user_map.is_integer, not model.item_map.is_integer]),
    }
    if model.train_ is not model.trained_interactions_:
        arrays["known_indptr"] = model.train_.indptr.cpu().numpy()
        arrays["known_indices"] = model.train_.indices.cpu().numpy()
    for name, extra in (("users", model.extra_users_), ("items", model.extra_items_)):
        if extra:
            keys = sorted(extra)
            arrays[f"extra_{name}"] = np.array(keys, dtype=np.int64)
            arrays[f"extra_{name[:-1]}_rows"] = (
                torch.stack([extra[k] for k in keys]).to(torch.float32).cpu().numpy()
            )
    return arrays


def read_catalogue(data: dict[str, np.ndarray], where: str, dim: int | None) -> dict[str, Any]:
    """Checked fields of :func:`catalogue_arrays`: trained shape, the known interactions,
    id maps and folded-in rows (``dim``: their width, None to skip the check)."""
    trained_users, trained_items = shape_field(data, where)
    extra: dict[str, dict[int, np.ndarray]] = {}
    total = {"users": trained_users, "items": trained_items}
    for name in ("users", "items"):
        extra[name] = {}
        if f"extra_{name}" not in data:
            continue
        keys = data[f"extra_{name}"]
        rows = data.get(f"extra_{name[:-1]}_rows")
        if keys.dtype.kind not in "iu" or keys.ndim != 1 or (keys.size and keys.min() < 0):
            raise CheckpointError(f"{where}: extra_{name} is not a list of indices.")
        if rows is None:
            raise CheckpointError(f"{where}: extra_{name} has no extra_{name[:-1]}_rows.")
        width = dim if dim is not None else rows.shape[-1]
        rows = float_array(rows, (keys.size, width), where, f"extra_{name[:-1]}_rows")
        extra[name] = {int(k): rows[j] for j, k in enumerate(keys.tolist())}
        if keys.size:
            total[name] = max(total[name], int(keys.max()) + 1)
    num_users, num_items = total["users"], total["items"]
    trained = csr_arrays(data, trained_users, trained_items, where)
    known = trained
    if "known_indptr" in data:
        known = csr_arrays(data, num_users, num_items, where, "known")
    text = data.get("ids_are_text")
    maps = []
    for j, (name, count) in enumerate((("user", num_users), ("item", num_items))):
        ids = data.get(f"{name}_ids")
        if ids is None:
            maps.append(IdMap.identity(count, name))
            continue
        if ids.shape != (count,) or ids.dtype.kind not in "iuU":
            raise CheckpointError(f"{where}: {name}_ids has shape {ids.shape}, not ({count},).")
        is_text = bool(text[j]) if text is not None and text.shape == (2,) else None
        try:
            maps.append(IdMap(_typed_ids(ids, is_text), name))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{where}: {name}_ids: {err}") from err
    return {
        "trained": (trained_users, trained_items),
        "train": trained,
        "known": (*known, num_items),
        "user_map": maps[0],
        "item_map": maps[1],
        "extra_users": extra["users"],
        "extra_items": extra["items"],
    }


def _typed_ids(ids: np.ndarray, is_text: bool | None) -> np.ndarray:
    """Raw ids with their type back. Files of version 0.1 stored every id as text: those
    whose every id is a plain integer were integer ids."""
    if ids.dtype.kind in "iu" or is_text:
        return ids
    if is_text is None and all(_INT_TOKEN.fullmatch(s) for s in ids.tolist()):
        try:
            return ids.astype(np.int64)
        except (OverflowError, ValueError):
            return ids
    return ids


def summary_field(data: dict[str, np.ndarray], path: Any) -> dict[str, Any]:
    """The saved ``summary`` (best epoch, history), or ``{}``."""
    summary: Any = {}
    if "summary" in data:
        summary = from_json_array(data["summary"], path, "summary")
    elif "train_state" in data:
        summary = from_json_array(data["train_state"], path, "train_state")
    if not isinstance(summary, dict):
        raise CheckpointError(f"{str(path)!r}: field 'summary' is not a JSON object.")
    best = summary.get("best_epoch", 0)
    if best is not None and (isinstance(best, bool) or not isinstance(best, int)):
        raise CheckpointError(f"{str(path)!r}: summary's best_epoch is not an integer.")
    for key in ("history", "timings"):
        records = summary.get(key, [])
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise CheckpointError(f"{str(path)!r}: summary's {key} is not a list of records.")
    return summary


def summary_array(model: Any) -> np.ndarray:
    return to_json_array(
        {
            "best_epoch": getattr(model, "best_epoch_", 0),
            "history": getattr(model, "history_", []),
        }
    )


def shape_field(data: dict, where: str) -> tuple[int, int]:
    """The stored ``(num_users, num_items)``."""
    shape = data["shape"]
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or int(shape.min()) < 0:
        raise CheckpointError(f"{where}: field 'shape' is not (num_users, num_items).")
    return int(shape[0]), int(shape[1])


def float_array(arr: np.ndarray, shape: tuple, where: str, name: str) -> np.ndarray:
    """``arr`` as finite float32 of ``shape``, or :class:`CheckpointError` naming the field."""
    if arr.dtype.kind != "f" or arr.shape != tuple(shape):
        raise CheckpointError(
            f"{where}: {name} is {arr.dtype} of shape {arr.shape}; expected floats of shape "
            f"{tuple(shape)}."
        )
    if not np.isfinite(arr).all():
        raise CheckpointError(f"{where}: {name} holds NaN or infinite values.")
    return np.ascontiguousarray(arr, dtype=np.float32)


def csr_arrays(data: dict, num_users: int, num_items: int, where: str, prefix: str = "train"):
    """Checked int64 ``(indptr, indices)`` of the stored ``<prefix>_*`` interactions."""
    indptr, indices = data[f"{prefix}_indptr"], data.get(f"{prefix}_indices")
    if indices is None:
        raise CheckpointError(f"{where} lacks the field {prefix}_indices.")
    ok = (
        indptr.dtype.kind in "iu"
        and indices.dtype.kind in "iu"
        and indptr.shape == (num_users + 1,)
        and indices.ndim == 1
    )
    if ok:
        indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
        row = np.repeat(np.arange(num_users, dtype=np.int64), np.diff(indptr).clip(min=0))
        ok = (
            indptr[0] == 0
            and bool(np.all(np.diff(indptr) >= 0))
            and indptr[-1] == indices.size
            and (indices.size == 0 or (indices.min() >= 0 and indices.max() < num_items))
            and bool(np.all(np.diff(row * num_items + indices) > 0))  # sorted, no duplicates
        )
    if not ok:
        raise CheckpointError(
            f"{where}: the stored interactions ({prefix}_indptr, {prefix}_indices) do not "
            f"form a valid {num_users} x {num_items} CSR matrix."
        )
    return indptr, indices


def config_field(data: dict, path: Any) -> Any:
    """The stored config, validated (a :class:`~lightgcn_sparse.config.Config`)."""
    from .config import Config

    try:
        return Config.from_dict(from_json_array(data["config"], path, "config"))
    except CheckpointError:
        raise
    except (TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(
            f"{str(path)!r}: its config cannot be used by this version ({err})"
        ) from err


