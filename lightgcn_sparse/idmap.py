"""Raw ids (as the data names users and items) to contiguous indices and back."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["IdMap", "UnknownIdError"]


class UnknownIdError(KeyError, ValueError):
    """A raw user or item id is not in the catalogue (both ``KeyError`` and ``ValueError``)."""

    def __str__(self) -> str:
        return str(self.args[0])


class IdMap:
    """Index ``k`` <-> raw id ``ids[k]``, for the users or the items of a model.

    Raw ids keep their type: an integer catalogue has int64 ids (``196`` and ``"196"`` both
    find user 196), any other has str ids matched exactly (``"SKU-1"`` and ``"sku-1"`` are
    different items). Whole-number floats (a column that pandas read as float) are integer
    ids; other floats, NaN, booleans, integers outside int64 and repeated ids are refused.

    Args:
        ids: (n,) distinct raw ids, int or str.
        kind: ``"user"`` or ``"item"``, for messages.
        source: what the ids belong to (e.g. ``"ml-100k"``), for messages.
    """

    def __init__(self, ids: Any, kind: str = "id", source: str = "") -> None:
        if isinstance(ids, (list, tuple)):  # numpy would make floats or objects of these
            big = [v for v in ids if isinstance(v, int) and not -(2**63) <= v < 2**63]
            if big:
                raise ValueError(f"{kind} ids must fit in int64. Got {big[0]}.")
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"{kind} ids must be one-dimensional. Got shape {arr.shape}.")
        if arr.size and arr.dtype.kind == "b":
            raise TypeError(f"{kind} ids must be integers or strings. Got booleans.")
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise ValueError(f"{kind} ids must fit in int64. Got {int(arr.max())}.")
        if arr.dtype.kind == "f":
            whole = np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < 2.0**63)
            if not whole.all():
                bad = arr[~whole][0].item()
                raise ValueError(f"{kind} ids must be integers or strings. Got the float {bad!r}.")
        if arr.dtype.kind in "iuf":
            arr = arr.astype(np.int64)
        else:
            arr = arr.astype(str)
        unique, counts = np.unique(arr, return_counts=True)
        if unique.size != arr.size:
            repeated = unique[counts > 1][0].item()
            raise ValueError(f"{kind} ids must be distinct. Got {repeated!r} more than once.")
        self.ids = arr
        self.kind = kind
        self.source = source
        self._lookup: dict[Any, int] | None = None

    @classmethod
    def identity(cls, n: int, kind: str = "id") -> IdMap:
        """Raw id = index, for data given as a matrix."""
        return cls(np.arange(n, dtype=np.int64), kind)

    @property
    def is_integer(self) -> bool:
        return self.ids.dtype.kind == "i"

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return f"IdMap({self.kind}s={len(self)}, dtype={self.ids.dtype})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, IdMap)
            and self.ids.dtype.kind == other.ids.dtype.kind
            and np.array_equal(self.ids, other.ids)
        )

    def _table(self) -> dict[Any, int]:
        if self._lookup is None:  # the ids are distinct (checked in __init__)
            self._lookup = {raw: k for k, raw in enumerate(self.ids.tolist())}
        return self._lookup

    def _one(self, raw: Any) -> int:
        key = raw
        if isinstance(raw, (np.generic, np.ndarray, torch.Tensor)):
            key = raw.item()  # a numpy scalar or a 0-d array or tensor
        if self.is_integer:
            if isinstance(key, str) and key.strip().lstrip("-").isdigit():
                key = int(key.strip())
            elif isinstance(key, float) and key.is_integer():  # as whole-float ids are stored
                key = int(key)
            elif isinstance(key, bool) or not isinstance(key, int):
                key = None
        else:
            key = key if isinstance(key, str) else (str(key) if isinstance(key, int) else None)
        found = self._table().get(key) if key is not None else None
        if found is None:
            shown = str(key) if self.is_integer and key is not None else repr(key or raw)
            where = f" of {self.source}" if self.source else ""
            raise UnknownIdError(
                f"unknown {self.kind} id {shown}: not among the {len(self)} {self.kind}s{where}"
            )
        return found

    def index(self, raw: Any) -> Any:
        """Index of raw id ``raw`` (an int), or an int64 array for a list or array of ids."""
        if isinstance(raw, torch.Tensor):
            raw = raw.detach().cpu().numpy()  # also CUDA tensors and parameters
        if isinstance(raw, (list, tuple)) or np.ndim(raw) > 0:  # also arrays and Series
            values = np.asarray(raw)
            if values.ndim != 1:
                raise ValueError(f"{self.kind} ids must be one id or a 1-D list of ids.")
            return np.array([self._one(r) for r in values.tolist()], dtype=np.int64)
        return self._one(raw)

    def raw(self, index: Any) -> Any:
        """Raw id(s) of index or indices ``index``."""
        return self.ids[index]

    def extended(self, total: int) -> IdMap:
        """This map grown to ``total`` entries; new integer ids continue after the largest,
        new str ids are ``"<kind>-<index>"``."""
        extra = total - len(self)
        if extra <= 0:
            return self
        if self.is_integer:
            start = int(self.ids.max()) + 1 if len(self) else 0
            new = np.arange(start, start + extra, dtype=np.int64)
        else:  # "<kind>-<index>", with a suffix where the catalogue already has that name
            taken = set(self._table())
            names = []
            for k in range(len(self), total):
                name, n = f"{self.kind}-{k}", 1
                while name in taken:
                    name, n = f"{self.kind}-{k}-{n}", n + 1
                taken.add(name)
                names.append(name)
            new = np.array(names)
        return IdMap(np.concatenate([self.ids, new]), self.kind, self.source)
