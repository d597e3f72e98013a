"""The fitted catalogue of a model: users and items, their raw ids, known interactions.

:class:`Catalogue` is the part of every model (see
:class:`~lightgcn_sparse.recommender.FactorRecommender`) that records what it was trained
on: the sizes, the :class:`~lightgcn_sparse.idmap.IdMap` of users and items, the
interactions it knows (filtered from recommendations), and users and items added after
training by :meth:`Catalogue.partial_fit_users` / :meth:`Catalogue.partial_fit_items`,
whose folded-in factors extend or override the trained ones. The input converters
(:func:`as_train`, :func:`frame_interactions`) live here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import scipy.sparse as sp
import torch

from ._checks import as_index_tensor
from .idmap import IdMap
from .user_items import (
    ITEM_ROWS,
    UserItemIndex,
    as_user_items,
    negative_values,
    user_items_from_csr,
    user_items_from_pairs,
)

UserItemsLike = Union[sp.spmatrix, UserItemIndex]

__all__ = ["Catalogue", "NotFittedError", "UserItemsLike", "as_train", "frame_interactions"]


class NotFittedError(RuntimeError):
    """The model was used before ``fit`` or ``load``."""


class Catalogue:
    """Fitted-state bookkeeping shared by every model (a mixin of FactorRecommender).

    Needs from the model: ``device``, ``factors()``, ``_fold_in_checked(rows)`` and
    ``_fold_in_items_checked(rows, m)``.
    """

    # ------------------------------------------------------------------ fitted state
    def _set_catalogue(
        self,
        train: UserItemIndex,
        user_map: IdMap | None = None,
        item_map: IdMap | None = None,
    ) -> None:
        """Record the trained catalogue; maps default to identity (raw id = index)."""
        self.train_ = train
        #: the interactions the model was trained on (``train_`` grows with partial_fit_*)
        self.trained_interactions_ = train
        self.num_users_, self.num_items_ = train.num_users, train.num_items
        #: size of the trained factor tables (users and items added later extend them)
        self.trained_users_, self.trained_items_ = train.num_users, train.num_items
        identity = IdMap.identity
        self.user_map = user_map if user_map is not None else identity(train.num_users, "user")
        self.item_map = item_map if item_map is not None else identity(train.num_items, "item")
        for name, m, n in (("user", self.user_map, train.num_users),
                           ("item", self.item_map, train.num_items)):  # fmt: skip
            if len(m) != n:
                raise ValueError(f"the {name} id map has {len(m)} ids for {n} {name}s.")
        #: folded-in factors: index -> (d,) row, overriding or extending _factors()
        self.extra_users_: dict[int, torch.Tensor] = {}
        self.extra_items_: dict[int, torch.Tensor] = {}

    def _load_catalogue(self, fields: dict, dtype: torch.dtype = torch.float32) -> None:
        """Set the fitted state from :func:`~lightgcn_sparse.persistence.read_catalogue`."""
        dev = self.device

        def index(indptr, indices, num_items) -> UserItemIndex:
            return UserItemIndex(
                torch.from_numpy(indptr).to(dev), torch.from_numpy(indices).to(dev), num_items
            )

        users, items = fields["trained"]
        maps = fields["user_map"], fields["item_map"]
        self._set_catalogue(
            index(*fields["train"], items),
            IdMap(maps[0].ids[:users], "user"),
            IdMap(maps[1].ids[:items], "item"),
        )
        if fields["known"][0] is not fields["train"][0]:
            self.train_ = index(*fields["known"])
        self.user_map, self.item_map = maps
        self.num_users_, self.num_items_ = len(maps[0]), len(maps[1])
        for name in ("users", "items"):
            rows = fields[f"extra_{name}"].items()
            extra = {k: torch.from_numpy(v).to(dev, dtype) for k, v in rows}
            setattr(self, f"extra_{name}_", extra)

    def _check_fitted(self) -> None:
        if not hasattr(self, "train_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit() or load() first."
            )

    @property
    def num_users(self) -> int:
        self._check_fitted()
        return self.num_users_

    @property
    def num_items(self) -> int:
        self._check_fitted()
        return self.num_items_

    @property
    def user_ids(self) -> np.ndarray:
        """(U,) raw id of each user index."""
        self._check_fitted()
        return self.user_map.ids

    @property
    def item_ids(self) -> np.ndarray:
        """(I,) raw id of each item index."""
        self._check_fitted()
        return self.item_map.ids

    def user_index(self, raw_id: Any) -> Any:
        """Index of the user with raw id ``raw_id`` (an int), or an int64 array for a list."""
        self._check_fitted()
        return self.user_map.index(raw_id)

    def item_index(self, raw_id: Any) -> Any:
        """Index of the item with raw id ``raw_id`` (an int), or an int64 array for a list."""
        self._check_fitted()
        return self.item_map.index(raw_id)

    # ------------------------------------------------------------------ partial fit
    def partial_fit_users(self, userids: Sequence[int], user_items: UserItemsLike) -> None:
        """Fold users in from their items and keep them: new indices extend the catalogue.

        Row ``j`` of ``user_items`` holds the items of user ``userids[j]``. An existing user
        gets folded-in factors and these items as its known interactions (filtered from its
        recommendations); an index ``>= num_users`` adds users (the catalogue grows to the
        largest index + 1; skipped indices get the items' mean factors and no items). The
        item factors and the trained users are unchanged, so nothing is retrained.
        """
        self._check_fitted()
        ids = _new_ids("userids", userids, "num_users")
        rows = self._rows(user_items, ids.numel(), "user_items")
        emb = self._fold_in_checked(rows) if ids.numel() else None
        new_total = max(self.num_users_, int(ids.max()) + 1 if ids.numel() else 0)
        self._grow_users(new_total)
        for j, u in enumerate(ids.tolist()):
            self.extra_users_[u] = emb[j].detach()
        self.train_ = _replace_rows(self.train_, ids.to(self.device), rows)

    def partial_fit_items(self, itemids: Sequence[int], item_users: UserItemsLike) -> None:
        """Fold items in from their users and keep them: new indices extend the catalogue.

        Row ``j`` of ``item_users`` (an (m, U) matrix) holds the users of item
        ``itemids[j]``. These interactions become known to the model (filtered from those
        users' recommendations); the trained users' factors are unchanged.
        """
        self._check_fitted()
        ids = _new_ids("itemids", itemids, "num_items")
        emb = self._fold_in_items_checked(item_users, ids.numel()) if ids.numel() else None
        users = as_user_items(item_users, ids.numel(), self.device, "item_users", ITEM_ROWS)
        new_total = max(self.num_items_, int(ids.max()) + 1 if ids.numel() else 0)
        self._grow_items(new_total)
        for j, i in enumerate(ids.tolist()):
            self.extra_items_[i] = emb[j].detach()
        # Known interactions, user-major: drop the old entries of these items, add the new.
        item_of = ids.to(self.device)[users.row_ids()]
        keep = ~torch.isin(self.train_.indices, ids.to(self.device))
        old_users, old_items = self.train_.row_ids()[keep], self.train_.indices[keep]
        self.train_ = user_items_from_pairs(
            torch.cat([old_users, users.indices]),
            torch.cat([old_items, item_of]),
            self.num_users_,
            self.num_items_,
            self.device,
        )

    def _grow_users(self, total: int) -> None:
        if total <= self.num_users_:
            return
        mean = self.factors()[0].mean(0)
        for u in range(self.num_users_, total):
            self.extra_users_.setdefault(u, mean)
        self.user_map = self.user_map.extended(total)
        pad = torch.full((total - self.num_users_,), self.train_.nnz, device=self.device)
        self.train_ = UserItemIndex(
            torch.cat([self.train_.indptr, pad]), self.train_.indices, self.num_items_
        )
        self.num_users_ = total

    def _grow_items(self, total: int) -> None:
        if total <= self.num_items_:
            return
        mean = self.factors()[1].mean(0)
        for i in range(self.num_items_, total):
            self.extra_items_.setdefault(i, mean)
        self.item_map = self.item_map.extended(total)
        self.train_ = UserItemIndex(self.train_.indptr, self.train_.indices, total)
        self.num_items_ = total


def _new_ids(name: str, values: Sequence[int], size_name: str) -> torch.Tensor:
    """(n,) int64 CPU indices for partial_fit_*: distinct and non-negative (an index at or
    past ``size_name`` adds one), checked before anything in the model changes."""
    ids = as_index_tensor(name, values).cpu()
    if ids.numel() and int(ids.min()) < 0:
        raise ValueError(
            f"{name} must be indices >= 0 (one >= {size_name} adds a new one). "
            f"Got {int(ids.min())} instead."
        )
    if ids.numel() and int(torch.unique(ids).numel()) != ids.numel():
        raise ValueError(f"{name} must not repeat an id.")
    return ids


def _with_extra(base: torch.Tensor, extra: dict[int, torch.Tensor]) -> torch.Tensor:
    """``base`` with the rows of ``extra`` put in (past its end, the table grows)."""
    if not extra:
        return base
    total = max(base.shape[0], max(extra) + 1)
    out = torch.empty(total, base.shape[1], dtype=base.dtype, device=base.device)
    out[: base.shape[0]] = base
    idx = torch.tensor(sorted(extra), device=base.device)
    out[idx] = torch.stack([extra[i].to(base.dtype) for i in sorted(extra)])
    return out


def _replace_rows(index: UserItemIndex, users: torch.Tensor, rows: UserItemIndex) -> UserItemIndex:
    """``index`` with the rows of ``users`` replaced by the rows of ``rows``."""
    from .user_items import user_items_from_pairs

    keep = ~torch.isin(index.row_ids(), users)
    new_users = users[rows.row_ids()]
    return user_items_from_pairs(
        torch.cat([index.row_ids()[keep], new_users]),
        torch.cat([index.indices[keep], rows.indices]),
        index.num_users,
        index.num_items,
        index.device,
    )


def as_train(user_items: Any, device: torch.device) -> UserItemIndex:
    """Training interactions as a :class:`UserItemIndex`; refuses an empty matrix.

    Accepts a scipy (U, I) sparse matrix (every stored non-zero counts once; negative values
    are refused), a :class:`UserItemIndex`, or a tuple ``(users, items)`` /
    ``(users, items, num_users, num_items)`` of index arrays.
    """
    from .user_items import user_items_from_pairs

    if isinstance(user_items, tuple):
        if len(user_items) == 4:
            ui = user_items_from_pairs(*user_items, device=device)
        elif len(user_items) == 2:
            users, items = (as_index_tensor(n, a) for n, a in zip(("users", "items"), user_items))
            nu = int(users.max()) + 1 if users.numel() else 0
            ni = int(items.max()) + 1 if items.numel() else 0
            ui = user_items_from_pairs(users, items, nu, ni, device=device)
        else:
            raise ValueError(
                "user_items as a tuple must be (users, items) or (users, items, num_users, "
                f"num_items). Got a tuple of length {len(user_items)}."
            )
    elif sp.issparse(user_items):
        ui = user_items_from_csr(user_items, device, "user_items")
    else:
        ui = as_user_items(user_items, None, device, "user_items")
    if ui.nnz == 0:
        raise ValueError("user_items has no interactions; there is nothing to train on.")
    return ui


def is_frame(data: Any) -> bool:
    """Whether ``data`` is a pandas DataFrame (without importing pandas for others)."""
    return type(data).__name__ == "DataFrame" and type(data).__module__.startswith("pandas")


def frame_interactions(
    frame: Any,
    device: torch.device,
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
    name: str = "user_items",
) -> tuple[UserItemIndex, IdMap, IdMap]:
    """A DataFrame of raw ids as interactions, with the id maps.

    Uses the columns ``user`` and ``item``; a frame of exactly two columns may name only
    one of them (the other column is the other id) or neither (then they are users, items
    in that order). Every row is one interaction; a ``rating`` column (or ``weight``,
    ``value``) with negative values is refused, as the matrix path refuses them. Without
    maps, the catalogue is the ids present, numbered in sorted order; with maps
    (validation data mapped like its training data), an id outside them raises
    ``UnknownIdError``.

    Returns:
        the :class:`UserItemIndex` and the user and item :class:`IdMap`.
    """
    columns = list(frame.columns)
    if {"user", "item"} <= set(columns):
        users, items = frame["user"], frame["item"]
    elif len(columns) == 2 and "item" in columns:
        users, items = frame[columns[1 - columns.index("item")]], frame["item"]
    elif len(columns) == 2 and "user" in columns:
        users, items = frame["user"], frame[columns[1 - columns.index("user")]]
    elif len(columns) == 2:
        users, items = frame[columns[0]], frame[columns[1]]
    else:
        raise ValueError(
            f"{name} as a DataFrame needs the columns 'user' and 'item' (or exactly two "
            f"columns). Got {columns}."
        )
    from pandas.api.types import is_numeric_dtype  # a frame was given: pandas is there

    for label in ("rating", "weight", "value"):  # numbers only: a column of words is unused
        values = frame[label] if label in columns else None
        if values is not None and is_numeric_dtype(values) and bool((values < 0).any()):
            raise negative_values(f"{name} has negative values in its {label!r} column")
    for label, col in (("user", users), ("item", items)):
        if col.isna().any():
            raise ValueError(f"{name} has a missing {label} id in row {int(col.isna().argmax())}.")
    if user_map is None or item_map is None:
        import pandas as pd

        user_codes, user_ids = pd.factorize(users, sort=True)
        item_codes, item_ids = pd.factorize(items, sort=True)
        user_map = IdMap(np.asarray(user_ids), "user")
        item_map = IdMap(np.asarray(item_ids), "item")
    else:
        user_codes = user_map.index(users.to_numpy())
        item_codes = item_map.index(items.to_numpy())
    index = user_items_from_pairs(
        np.asarray(user_codes, dtype=np.int64), np.asarray(item_codes, dtype=np.int64),
        len(user_map), len(item_map), device,
    )  # fmt: skip
    return index, user_map, item_map


def training_data(
    user_items: Any,
    validation: Any,
    device: torch.device,
    user_ids: Any = None,
    item_ids: Any = None,
) -> tuple[UserItemIndex, Any, IdMap | None, IdMap | None]:
    """``fit``'s inputs as ``(train, validation, user_map, item_map)``.

    ``user_items`` is a matrix (:func:`as_train`; ``user_ids``/``item_ids`` name its rows and
    columns) or a DataFrame of raw ids (:func:`frame_interactions`; then ``validation``, if
    a DataFrame too, is mapped with the training ids).
    """
    if is_frame(user_items):
        if user_ids is not None or item_ids is not None:
            raise ValueError(
                "user_ids and item_ids come from the DataFrame's ids; do not pass them too."
            )
        train, user_map, item_map = frame_interactions(user_items, device)
        if validation is not None and is_frame(validation):
            validation = frame_interactions(validation, device, user_map, item_map,
                                            "validation")[0]  # fmt: skip
        return train, validation, user_map, item_map
    if is_frame(validation):
        raise ValueError(
            "validation is a DataFrame of raw ids but user_items is not; give both as "
            "DataFrames (or both as matrices)."
        )
    return (
        as_train(user_items, device),
        validation,
        IdMap(user_ids, "user") if user_ids is not None else None,
        IdMap(item_ids, "item") if item_ids is not None else None,
    )
