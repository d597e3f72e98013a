r"""Exact, vectorized negative sampling and BPR triple drawing.

Negatives are drawn without rejection. For a user with sorted items
:math:`s_0 < s_1 < \dots < s_{d-1}` out of ``I``, draw a rank ``r`` uniformly from
``[0, I - d)``; the ``r``-th item the user has *not* interacted with is

.. math:: r + \#\{k : s_k - k \le r\},

since :math:`s_k - k` counts the non-interacted items below :math:`s_k`. The keys
:math:`u I + s_k - k` are globally sorted, so one ``searchsorted`` over all pending samples
answers every count at once: ``O(log nnz)`` per sample, no loop, no retries, and exactly
uniform over each user's complement (up to the ``2**-31`` modulo bias of a 62-bit draw).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import torch

from ._checks import ArrayLike, as_index_tensor, check_int
from .user_items import UserItemIndex, user_items_from_pairs

Triples = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _uniform_below(high: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """(n,) int64 uniform in ``[0, high)`` elementwise; ``high`` must be positive."""
    raw = torch.randint(
        0, 2**62, high.shape, generator=generator, device=high.device, dtype=torch.int64
    )
    return raw % high


class BPRSampler:
    """Draws BPR triples ``(user, positive, negative)`` from training interactions.

    Build it once per training set; every draw is a handful of vectorized ops on the
    device the interactions live on. Reproducible given a ``torch.Generator`` on that device.

    Args:
        interactions: a :class:`UserItemIndex` (see :mod:`lightgcn_sparse.user_items`).
    """

    def __init__(self, interactions: UserItemIndex) -> None:
        if not isinstance(interactions, UserItemIndex):
            raise TypeError(
                f"interactions must be a UserItemIndex. Got {type(interactions).__name__}; "
                "use BPRSampler.from_pairs(users, items, num_users, num_items)."
            )
        self.interactions = interactions
        num_items = interactions.num_items
        deg = interactions.degrees()  # (U,)
        local = torch.arange(interactions.nnz, device=interactions.device)
        local = local - torch.repeat_interleave(interactions.indptr[:-1], deg)
        # (nnz,) sorted keys u * I + (s_k - k): see the module docstring.
        self._shifted = interactions.keys() - local
        self._free = num_items - deg  # (U,) number of negatives of each user
        ok = (deg > 0) & (self._free > 0)
        #: users that can form a BPR triple (at least one positive and one negative)
        self.eligible_users = torch.nonzero(ok).reshape(-1)  # (U',)
        #: users who interacted with every item: they have no negative and are never drawn
        self.full_users = torch.nonzero((deg > 0) & (self._free == 0)).reshape(-1)
        user_of = interactions.row_ids()
        self._eligible_entries = torch.nonzero(ok[user_of]).reshape(-1)  # (nnz',)
        self._user_of = user_of

    @classmethod
    def from_pairs(
        cls, users: ArrayLike, items: ArrayLike, num_users: int, num_items: int, device=None
    ) -> BPRSampler:
        """Build from (E,) user and item id arrays (duplicates count once)."""
        return cls(user_items_from_pairs(users, items, num_users, num_items, device))

    @property
    def device(self) -> torch.device:
        return self.interactions.device

    @property
    def num_eligible(self) -> int:
        """Interactions of users that can form a triple: one epoch of :meth:`epoch`."""
        return int(self._eligible_entries.numel())

    def negatives_available(self, users: torch.Tensor) -> torch.Tensor:
        """(n,) bool: whether each user has at least one non-interacted item."""
        return self._free[users] > 0

    def negatives(
        self, users: ArrayLike, generator: Optional[torch.Generator] = None, *, check: bool = True
    ) -> torch.Tensor:
        """One uniformly random non-interacted item for each entry of ``users``.

        Args:
            users: (n,) user ids.
            generator: optional ``torch.Generator`` on the sampler's device.

        Returns:
            (n,) int64 item ids, each outside that user's interactions.

        Raises:
            ValueError: if a user has interacted with every item (no negative exists).
        """
        ui = self.interactions
        if check:
            users = as_index_tensor("users", users, ui.num_users, self.device)
        free = self._free[users]  # (n,)
        if check and users.numel() and bool((free <= 0).any()):
            bad = int(users[free <= 0][0])
            raise ValueError(
                f"user {bad} has interacted with all {ui.num_items} items, so no negative "
                "item exists for it; drop such users from the training data."
            )
        rank = _uniform_below(free, generator)  # (n,) rank among the user's negatives
        query = users * ui.num_items + rank
        below = torch.searchsorted(self._shifted, query, right=True) - ui.indptr[users]
        return rank + below

    def positives(
        self,
        users: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        *,
        check: bool = True,
    ) -> torch.Tensor:
        """(n,) one item drawn uniformly from each user's interactions (users need >= 1)."""
        ui = self.interactions
        start = ui.indptr[users]
        deg = ui.indptr[users + 1] - start
        if check and users.numel() and bool((deg == 0).any()):
            raise ValueError(f"user {int(users[deg == 0][0])} has no interactions to draw from.")
        return ui.indices[start + _uniform_below(deg, generator)]

    def sample_users(self, batch_size: int, generator: Optional[torch.Generator] = None) -> Triples:
        """The standard BPR batch: users uniformly, a positive of each, a negative of each.

        Returns:
            three (batch_size,) int64 tensors ``(users, positives, negatives)``.
        """
        return self.epoch_triples("users", batch_size, 1, generator)[0]

    def epoch(
        self, batch_size: int, generator: Optional[torch.Generator] = None
    ) -> Iterator[Triples]:
        """One pass over all training interactions in random order, with fresh negatives.

        Yields ``ceil(nnz' / batch_size)`` batches of ``(users, positives, negatives)``,
        nnz' being the interactions of users who have at least one negative.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        steps = max(1, -(-self.num_eligible // batch_size))
        triples, sizes = self.epoch_triples("interactions", batch_size, steps, generator)
        yield from zip(*(t.split(sizes) for t in triples))

    def epoch_triples(
        self,
        mode: str,
        batch_size: int,
        steps: int,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[Triples, list[int]]:
        """A whole epoch of ``steps`` batches, drawn at once on the sampler's device.

        ``mode="interactions"``: shuffled passes over the interactions (as :meth:`epoch`),
        each pass ending with a shorter batch, cut after ``steps`` batches; the random
        stream is the one :meth:`epoch` uses, so both give the same triples.
        ``mode="users"``: ``steps * batch_size`` triples with users drawn uniformly.
        No host synchronization: every draw is a few vectorized ops.

        Returns:
            ``(users, positives, negatives)``, each (n,) int64, and the batch sizes (summing
            to n) that cut them into the epoch's batches.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        steps = check_int("steps", steps, low=1)
        self._check_nonempty()
        if mode == "users":
            n = steps * batch_size
            count = torch.full((n,), self.eligible_users.numel(), device=self.device)
            users = self.eligible_users[_uniform_below(count, generator)]
            pos = self.positives(users, generator, check=False)
            return (users, pos, self.negatives(users, generator, check=False)), [batch_size] * steps
        if mode != "interactions":
            raise ValueError(f"mode must be 'interactions' or 'users'. Got {mode!r}.")
        entries = self._eligible_entries
        per_pass = -(-entries.numel() // batch_size)
        parts, sizes = [], []
        while len(sizes) < steps:
            take = min(steps - len(sizes), per_pass)
            perm = entries[torch.randperm(entries.numel(), generator=generator, device=self.device)]
            idx = perm[: min(take * batch_size, perm.numel())]  # (take * B or less,)
            users = self._user_of[idx]
            neg = self.negatives(users, generator, check=False)
            parts.append((users, self.interactions.indices[idx], neg))
            sizes += [batch_size] * (take - 1) + [idx.numel() - (take - 1) * batch_size]
        triples = tuple(torch.cat(p) if len(parts) > 1 else p[0] for p in zip(*parts))
        return triples, sizes  # type: ignore[return-value]

    def _check_nonempty(self) -> None:
        if self.eligible_users.numel() == 0:
            raise ValueError(
                "no user has both an interaction and a non-interacted item; "
                "BPR training needs at least one such user."
            )


def validation_triples(
    valid: UserItemIndex, train: UserItemIndex, generator: Optional[torch.Generator] = None
) -> Triples:
    """Fixed BPR triples for a validation loss: every held-out pair with one negative.

    Each negative is an item the user has neither in ``valid`` nor (up to 10 redraws) in
    ``train``; users whose held-out items cover the catalogue are left out.

    Returns:
        three (m,) int64 tensors ``(users, positives, negatives)``.
    """
    sampler = BPRSampler(valid)
    users = valid.row_ids()
    ok = sampler.negatives_available(users)
    users, pos = users[ok], valid.indices[ok]
    neg = sampler.negatives(users, generator)
    bad = train.contains(users, neg)  # redraw negatives that are training items
    for _ in range(10):
        if not bool(bad.any()):
            break
        neg[bad] = sampler.negatives(users[bad], generator)
        bad = train.contains(users, neg)
    return users, pos, neg


def sample_negatives(
    users: ArrayLike,
    items: ArrayLike,
    num_items: int,
    num_users: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
) -> torch.Tensor:
    """For each training pair ``(users[j], items[j])``, one uniform non-interacted item.

    A one-shot convenience over :class:`BPRSampler`; build the sampler once when drawing
    repeatedly.

    Returns:
        (E,) int64 negative item ids.
    """
    u = as_index_tensor("users", users, None, device)
    if num_users is None:
        num_users = int(u.max()) + 1 if u.numel() else 0
    sampler = BPRSampler.from_pairs(u, items, num_users, num_items, device)
    return sampler.negatives(u, generator)
