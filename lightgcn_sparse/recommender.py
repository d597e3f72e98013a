r"""The recommender contract, implemented once over user and item factors.

Every model here (:class:`~lightgcn_sparse.model.LightGCN`, the
:class:`~lightgcn_sparse.baseline.Popularity` baseline, any model added later) is a
:class:`FactorRecommender`: its score for user ``u`` and item ``i`` is the inner product
:math:`\langle p_u, q_i \rangle` of a user factor and an item factor. A model supplies

* ``fit(user_items, validation=None, **kwargs) -> self``, which ends by calling
  :meth:`FactorRecommender._set_catalogue`;
* ``_factors() -> (P, Q)``: (U, d) user and (I, d) item factors on ``self.device``;
* ``_fold_in_users(liked) -> (n, d)`` and ``_fold_in_items(users) -> (m, d)``: factors of
  users (items) known only by their items (users), without retraining;
* ``save(path)`` and the classmethod ``load(path)``;

and inherits ``recommend``, ``recalculate_user``, ``recalculate_item``,
``recommend_for_items``, ``partial_fit_users``, ``partial_fit_items``, ``similar_items``,
``similar_users``, ``evaluate`` and the raw-id maps. Names, arguments and return types follow
``implicit`` (``recommend`` returns int32 ids and float32 scores, 1-D for one user, 2-D for
an array of users), so evaluation, the CLI and the benchmarks take any model.

Users and items added after training (:meth:`partial_fit_users`, :meth:`partial_fit_items`)
or refitted from new interactions get folded-in factors; those are kept in ``extra_users_`` /
``extra_items_`` and override or extend what ``_factors`` returns.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ._checks import as_index_tensor, check_int
from .catalogue import Catalogue, NotFittedError, UserItemsLike, _with_extra
from .metrics import DEFAULT_CHUNK_BYTES, _topk, evaluate_ranking
from .user_items import ITEM_ROWS, UserItemIndex, as_user_items

__all__ = ["FactorRecommender", "NotFittedError", "UserItemsLike"]


class FactorRecommender(Catalogue, abc.ABC):
    """Base class of every model: the contract, and its implementation over factors.

    Attributes (after ``fit`` or ``load``):
        num_users_, num_items_: catalogue size, including users and items added later.
        train_: :class:`UserItemIndex` of the interactions known to the model (training, plus
            those given to ``partial_fit_*``); filtered from recommendations by default.
        user_map, item_map: :class:`~lightgcn_sparse.idmap.IdMap` between raw ids and indices.
    """

    #: the name stored in saved files and shown in messages
    kind: str = "model"

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """The device holding the factors."""

    @abc.abstractmethod
    def fit(self, user_items: Any, validation: Any = None, **kwargs: Any) -> FactorRecommender:
        """Learn from ``user_items`` (users x items); returns ``self``."""

    @abc.abstractmethod
    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U0, d) user and (I0, d) item factors of the trained catalogue."""

    @abc.abstractmethod
    def save(self, path: Any) -> Any:
        """Write the fitted model to ``path``."""

    def _fold_in_users(self, liked: UserItemIndex) -> torch.Tensor:
        """(n, d) factors of users given only their items (rows of ``liked``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot fold in new users.")

    def _fold_in_items(self, users: UserItemIndex) -> torch.Tensor:
        """(m, d) factors of items given only their users (row j of ``users``: item j's)."""
        raise NotImplementedError(f"{type(self).__name__} cannot fold in new items.")

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, d) user and (I, d) item factors, folded-in rows included."""
        self._check_fitted()
        users, items = self._factors()
        return _with_extra(users, self.extra_users_), _with_extra(items, self.extra_items_)

    @property
    def user_factors(self) -> np.ndarray:
        """(U, d) float32 numpy user factors."""
        return self.factors()[0].to(torch.float32).cpu().numpy()

    @property
    def item_factors(self) -> np.ndarray:
        """(I, d) float32 numpy item factors."""
        return self.factors()[1].to(torch.float32).cpu().numpy()

    # ------------------------------------------------------------------ inputs
    def _rows(self, data: UserItemsLike, count: int | None, name: str) -> UserItemIndex:
        """``data`` as a :class:`UserItemIndex` on this device with ``num_items_`` columns."""
        ui = as_user_items(data, count, self.device, name)
        if ui.num_items != self.num_items_:
            raise ValueError(
                f"{name} must have {self.num_items_} columns (items). Got {ui.num_items}."
            )
        return ui

    def _user_rows(self, userid: Any, user_items: UserItemsLike | None, recalculate: bool):
        """Factors (n, d), their ids in ``seen`` (n,) and the rows of seen items."""
        if recalculate:
            n = 1 if np.ndim(userid) == 0 else len(userid)
            if user_items is None:
                raise ValueError("recalculate_user=True needs user_items (the user's items).")
            seen = self._rows(user_items, n, "user_items")
            return self._fold_in_checked(seen), torch.arange(n, device=self.device), seen
        users = as_index_tensor("userid", userid, self.num_users_, self.device)
        factors = self.factors()[0]
        if user_items is None:
            return factors[users], users, self.train_
        seen = self._rows(user_items, users.numel(), "user_items")
        return factors[users], torch.arange(users.numel(), device=self.device), seen

    def _fold_in_checked(self, liked: UserItemIndex) -> torch.Tensor:
        if liked.nnz and int(liked.degrees().min()) == 0:
            empty = int(torch.nonzero(liked.degrees() == 0)[0])
            raise ValueError(
                f"user_items row {empty} is empty: a user folded in from no items has no "
                "preferences to rank by; give at least one item per user."
            )
        if liked.nnz == 0:
            raise ValueError(
                "user_items holds no items: a user folded in from no items has no preferences "
                "to rank by; give at least one item per user."
            )
        return self._fold_in_users(liked)

    # ------------------------------------------------------------------ recommend
    def recommend(
        self,
        userid: int | Sequence[int] | np.ndarray,
        user_items: UserItemsLike | None = None,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items: Sequence[int] | None = None,
        recalculate_user: bool = False,
        items: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``N`` items for one user or an array of users (``implicit``'s contract).

        Args:
            userid: a user index, or an array of them (see :meth:`user_index` for raw ids).
            user_items: (len(userid), I) sparse rows of each user's items, used to filter
                liked items (and, with ``recalculate_user``, to fold the user in). ``None``:
                the interactions the model knows.
            N: list length, in ``[1, I]``.
            filter_already_liked_items: drop items in ``user_items`` from the ranking.
            filter_items: item ids never to recommend.
            recalculate_user: compute the user's factors from ``user_items`` instead of the
                trained ones (see :meth:`recalculate_user`); works for users unseen in training.
            items: rank only these item ids.

        Returns:
            ``(ids, scores)``: int32 and float32 arrays of shape (N,) for one user or (n, N)
            for n users, best first. A 1-D result is cut to the items available; a 2-D one is
            padded with id -1 and score -inf when fewer than N items are available.
        """
        self._check_fitted()
        N = check_int("N", N, low=1, high=self.num_items_)
        emb, rows, seen = self._user_rows(userid, user_items, recalculate_user)
        mask = self._item_mask(filter_items, items)
        exclude = seen if filter_already_liked_items else None
        # checked here (ids, N, the mask); the factors are checked after training
        users = rows if exclude is not None else None
        ids, scores = _topk(emb, self.factors()[1], N, exclude, users, mask, DEFAULT_CHUNK_BYTES)
        return _as_result(ids, scores, np.ndim(userid) == 0)

    def _item_mask(
        self, filter_items, items, size: int | None = None, kind: str = "items"
    ) -> torch.Tensor | None:
        """(size,) bool candidates, or None when every one is a candidate; ``kind`` names
        the arguments in messages (``filter_users`` / ``users`` for :meth:`similar_users`)."""
        size = self.num_items_ if size is None else size
        if items is None and filter_items is None:
            return None
        mask = torch.ones(size, dtype=torch.bool, device=self.device)
        if items is not None:
            mask.zero_()
            mask[as_index_tensor(kind, items, size, self.device)] = True
        if filter_items is not None:
            mask[as_index_tensor(f"filter_{kind}", filter_items, size, self.device)] = False
        return mask

    def recalculate_user(self, userid: Any, user_items: UserItemsLike) -> np.ndarray:
        """Factors of user(s) folded in from their items: (d,) or (n, d) float32.

        ``user_items`` holds one row per user; ``userid`` is only used to tell one user from
        many, so this works for users who were not in the training data.
        """
        self._check_fitted()
        single = np.ndim(userid) == 0
        n = 1 if single else len(userid)
        emb = self._fold_in_checked(self._rows(user_items, n, "user_items"))
        emb = emb.to(torch.float32).cpu().numpy()
        return emb[0] if single else emb

    def recalculate_item(self, itemid: Any, item_users: UserItemsLike) -> np.ndarray:
        """Factors of item(s) folded in from their users: (d,) or (m, d) float32.

        ``item_users`` is an (m, U) sparse matrix, row ``j`` holding the users of item ``j``;
        ``itemid`` only tells one item from many, so this works for new items.
        """
        self._check_fitted()
        single = np.ndim(itemid) == 0
        m = 1 if single else len(itemid)
        emb = self._fold_in_items_checked(item_users, m).to(torch.float32).cpu().numpy()
        return emb[0] if single else emb

    def _fold_in_items_checked(self, item_users: UserItemsLike, m: int) -> torch.Tensor:
        users = as_user_items(item_users, m, self.device, "item_users", ITEM_ROWS)
        if users.num_items != self.num_users_:
            raise ValueError(
                f"item_users must have {self.num_users_} columns (users). Got {users.num_items}."
            )
        if users.nnz == 0 or int(users.degrees().min()) == 0:
            raise ValueError(
                "item_users has an item with no users: an item folded in from no users has no "
                "position to rank it by; give at least one user per item."
            )
        return self._fold_in_items(users)

    def recommend_for_items(
        self, liked_items: Sequence[int], N: int = 10, filter_items: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``N`` for a brand-new user who likes ``liked_items`` (excluded from the list)."""
        self._check_fitted()
        liked = as_index_tensor("liked_items", liked_items, self.num_items_).numpy()
        if liked.size == 0:
            raise ValueError("liked_items is empty: name at least one item the user likes.")
        row = sp.csr_matrix(
            (np.ones(liked.size, dtype=np.float32), (np.zeros(liked.size, dtype=np.int64), liked)),
            shape=(1, self.num_items_),
        )
        return self.recommend(0, row, N=N, filter_items=filter_items, recalculate_user=True)

    # ------------------------------------------------------------------ similarity
    def _similar(self, emb: torch.Tensor, idx, name: str, N: int, filter_items, items):
        index = as_index_tensor(name, idx, emb.shape[0], self.device)
        N = check_int("N", N, low=1, high=emb.shape[0])
        normed = torch.nn.functional.normalize(emb, dim=1)
        kind = "users" if name == "userid" else "items"
        mask = self._item_mask(filter_items, items, emb.shape[0], kind)
        ids, scores = _topk(normed[index], normed, N, None, None, mask, DEFAULT_CHUNK_BYTES)
        return _as_result(ids, scores, np.ndim(idx) == 0)

    def similar_items(self, itemid, N: int = 10, filter_items=None, items=None):
        """Most similar items by cosine of the item factors (the item itself included)."""
        self._check_fitted()
        return self._similar(self.factors()[1], itemid, "itemid", N, filter_items, items)

    def similar_users(self, userid, N: int = 10, filter_users=None, users=None):
        """Most similar users by cosine of the user factors (the user itself included)."""
        self._check_fitted()
        return self._similar(self.factors()[0], userid, "userid", N, filter_users, users)

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        test: UserItemsLike,
        exclude: UserItemsLike | None = None,
        ks: Sequence[int] | None = None,
    ) -> dict[str, float]:
        """Full-ranking Recall/Precision/NDCG/HitRate/MAP@K on ``test`` (users x items).

        ``exclude`` (default: the interactions the model knows) is never ranked.
        """
        self._check_fitted()
        truth = self._rows(test, self.num_users_, "test")
        excl = self.train_ if exclude is None else self._rows(exclude, self.num_users_, "exclude")
        users, items = self.factors()
        return evaluate_ranking(users, items, truth, excl, self._default_ks() if ks is None else ks)

    def _default_ks(self) -> tuple[int, ...]:
        return (10, 20)


def _as_result(ids: torch.Tensor, scores: torch.Tensor, single: bool):
    """implicit's return convention: int32 ids, float32 scores; -1 / -inf padding."""
    ids = ids.to(torch.int32).cpu().numpy()
    scores = scores.to(torch.float32).cpu().numpy()
    ids[~np.isfinite(scores)] = -1
    if single:
        keep = np.isfinite(scores[0])
        return ids[0][keep], scores[0][keep]
    return ids, scores
