"""The most-popular baseline, as a model of the common contract.

Its scores are one-dimensional factors: every user's factor is 1 and an item's factor is
the number of distinct users who interacted with it, minus a tie-break below one that
decreases with the item index. So it ranks by popularity, then by the lower item id, for
everyone, and ``recommend``, ``evaluate``, filtering and the CLI work on it exactly as on
LightGCN. New users need no fold-in (everyone gets the same list); it has no notion of
similarity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._checks import check_device
from .catalogue import UserItemsLike, training_data
from .checkpoint import CheckpointError, atomic_write_npz, read_npz, require_fields
from .persistence import catalogue_arrays, fingerprint, read_catalogue
from .recommender import FactorRecommender
from .user_items import UserItemIndex

__all__ = ["Popularity"]


class Popularity(FactorRecommender):
    """Recommends the items most users interacted with, the same list for everyone.

    Ties are broken by the lower item id. ``recommend`` follows ``implicit``.

    Args:
        device: where to rank (default CPU).
    """

    kind = "popularity"

    def __init__(self, device: str | torch.device | None = None) -> None:
        self._device = check_device(device)
        self.dataset = ""

    @property
    def device(self) -> torch.device:
        return self._device

    def fit(
        self,
        user_items: UserItemsLike | tuple,
        validation: Any = None,
        *,
        show_progress: bool = False,
        user_ids: Any = None,
        item_ids: Any = None,
        **kwargs: Any,
    ) -> Popularity:
        """Count item popularity in ``user_items`` (users x items); returns ``self``.

        ``validation`` and training options are accepted for the common contract and unused.
        """
        train, _, user_map, item_map = training_data(
            user_items, None, self._device, user_ids, item_ids
        )
        self._set_catalogue(train, user_map, item_map)
        self.fingerprint_ = fingerprint(train)
        self.best_epoch_, self.history_ = 0, []
        return self

    @property
    def item_scores_(self) -> np.ndarray:
        """(I,) number of distinct training users of each item."""
        self._check_fitted()
        counts = torch.bincount(self.trained_interactions_.indices, minlength=self.trained_items_)
        return counts.to(torch.float32).cpu().numpy()

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        counts = torch.bincount(self.trained_interactions_.indices, minlength=self.trained_items_)
        num = counts.numel()
        # float64: counts stay exact and the tie-break (< 0.5) never reorders two counts.
        tie = torch.linspace(0.0, -0.5, num, dtype=torch.float64, device=self._device)
        items = (counts.to(torch.float64) + tie).reshape(-1, 1)  # (I, 1)
        users = torch.ones(self.trained_users_, 1, dtype=torch.float64, device=self._device)
        return users, items

    def _fold_in_users(self, liked: UserItemIndex) -> torch.Tensor:
        return torch.ones(liked.num_users, 1, dtype=torch.float64, device=self._device)

    def _fold_in_items(self, users: UserItemIndex) -> torch.Tensor:
        # A new item counts its users (and sorts after older items of the same count).
        return users.degrees().to(torch.float64).reshape(-1, 1) - 0.5

    def recommend(self, userid, user_items=None, N: int = 10, **kwargs: Any):
        """As :meth:`FactorRecommender.recommend`; the scores are the popularity counts."""
        ids, scores = super().recommend(userid, user_items, N, **kwargs)
        return ids, np.ceil(scores)  # drop the tie-break (< 0.5 below the count)

    def similar_items(self, itemid, N: int = 10, filter_items=None, items=None):
        raise NotImplementedError(
            "Popularity ranks the same items for everyone; it has no item similarity."
        )

    def similar_users(self, userid, N: int = 10, filter_users=None, users=None):
        raise NotImplementedError(
            "Popularity ranks the same items for everyone; it has no user similarity."
        )

    def save(self, path: str | Path) -> Path:
        """Write the known interactions and id maps (the counts follow from them)."""
        self._check_fitted()
        return atomic_write_npz(path, catalogue_arrays(self))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Popularity:
        where = repr(str(path))
        data = read_npz(path)
        kind = str(data.get("kind", "lightgcn"))  # files of version 0.1 hold LightGCN models
        if kind != cls.kind:
            raise CheckpointError(f"{where} holds a {kind} model, not a {cls.kind} one.")
        require_fields(data, path, ("shape", "train_indptr"))
        model = cls(device)
        model._load_catalogue(read_catalogue(data, where, 1), torch.float64)
        model.fingerprint_ = str(data.get("fingerprint", fingerprint(model.trained_interactions_)))
        model.dataset = str(data.get("dataset", ""))
        model.best_epoch_, model.history_ = 0, []
        return model

    def __repr__(self) -> str:
        if not hasattr(self, "train_"):
            return "Popularity()"
        return f"Popularity(users={self.num_users_}, items={self.num_items_})"
