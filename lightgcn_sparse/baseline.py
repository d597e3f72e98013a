"""Most-popular baseline with the ``implicit`` recommend API."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["Popularity", "popularity_scores"]


def popularity_scores(train_csr: sp.spmatrix | sp.sparray) -> np.ndarray:
    """(num_items,) float32 number of distinct users with a non-zero entry for each item."""
    if not sp.issparse(train_csr):
        raise TypeError(f"train_csr must be a scipy sparse matrix, got {type(train_csr).__name__}")
    matrix = sp.csr_matrix(train_csr, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float32)


class Popularity:
    """Recommends the items most users interacted with, the same list for everyone.

    Ties are broken by the lower item id. ``recommend`` follows ``implicit``:
    ``user_items`` holds one row per requested user.
    """

    def __init__(self) -> None:
        pass

    def fit(self, user_items: sp.spmatrix | sp.sparray, show_progress: bool = False) -> Popularity:
        """Count item popularity in ``user_items`` (users x items); returns ``self``."""
        self.item_scores_ = popularity_scores(user_items)  # (I,)
        self.order_ = np.argsort(-self.item_scores_, kind="stable")  # (I,) best first
        return self

    def recommend(
        self,
        userid: Any,
        user_items: sp.spmatrix | sp.sparray | None,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items: Any = None,
        recalculate_user: bool = False,
        items: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``N`` items per user as ``(ids int32, scores float32)``.

        One user gives 1-D arrays (only the items available, at most ``N``); an array of
        users gives ``(len(userid), min(N, candidates))`` arrays padded with id ``-1`` and
        score ``-inf`` where a user has fewer unfiltered items. ``filter_items`` removes
        items for everyone; ``items`` restricts the candidates (not both).
        ``recalculate_user`` is accepted for API compatibility and has no effect.
        """
        if not hasattr(self, "order_"):
            raise RuntimeError("Popularity is not fitted yet; call fit(user_items) first")
        if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 0:
            raise ValueError(f"N must be an int in [0, inf). Got {N!r} instead.")
        single = np.isscalar(userid)
        users = np.atleast_1d(np.asarray(userid))
        if users.ndim != 1 or (users.size and not np.issubdtype(users.dtype, np.integer)):
            raise TypeError(f"userid must be an int or a 1-D array of ints, got {userid!r}")
        num_items = len(self.item_scores_)
        liked = None
        if filter_already_liked_items:
            if not sp.issparse(user_items):
                raise ValueError("user_items needs to be a scipy sparse CSR matrix")
            liked = sp.csr_matrix(user_items)
            if liked.shape[0] != len(users):
                raise ValueError(
                    "user_items must contain 1 row for every user in userids: "
                    f"got {liked.shape[0]} rows for {len(users)} users"
                )
        candidates = self.order_
        if items is not None and filter_items is not None:
            raise ValueError("Can't set both items and filter_items in recommend call")
        for arg, value in (("items", items), ("filter_items", filter_items)):
            if value is None:
                continue
            ids = np.asarray(value)
            if ids.size and (ids.min() < 0 or ids.max() >= num_items):
                raise IndexError(f"{arg} must be item ids in [0, {num_items}), got {value!r}")
            keep = np.isin(candidates, ids)
            candidates = candidates[keep if arg == "items" else ~keep]
        count = min(int(N), len(candidates))
        ids = np.full((len(users), count), -1, dtype=np.int32)
        scores = np.full((len(users), count), -np.inf, dtype=np.float32)
        for row in range(len(users)):
            ranked = candidates
            if liked is not None:
                start, end = liked.indptr[row], liked.indptr[row + 1]
                seen = liked.indices[start:end][liked.data[start:end] != 0]
                ranked = ranked[: count + len(seen)]
                ranked = ranked[~np.isin(ranked, seen)]
            ranked = ranked[:count]
            ids[row, : len(ranked)] = ranked
            scores[row, : len(ranked)] = self.item_scores_[ranked]
        if single:
            valid = ids[0] >= 0
            return ids[0][valid], scores[0][valid]
        return ids, scores
