"""``UserItemIndex``: each user's items as a device-resident CSR index (sampling, ranking, filters).

This is the engine's view of interactions: integer indices on one device, no raw ids. The
data layer's :class:`~lightgcn_sparse.data.InteractionTable` (raw ids, ratings, metadata) is
converted to it with ``user_items_from_csr(table.to_csr())``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import scipy.sparse as sp
import torch

from ._checks import ArrayLike, as_index_tensor, check_device, check_int


@dataclass(frozen=True)
class UserItemIndex:
    """Deduplicated user -> item lists in CSR form, on one device.

    Attributes:
        indptr: (U + 1,) int64 row pointers.
        indices: (nnz,) int64 item ids, sorted within each user.
        num_items: size of the item catalogue ``I``.
    """

    indptr: torch.Tensor
    indices: torch.Tensor
    num_items: int

    @property
    def num_users(self) -> int:
        return self.indptr.numel() - 1

    @property
    def nnz(self) -> int:
        return self.indices.numel()

    @property
    def device(self) -> torch.device:
        return self.indices.device

    def degrees(self) -> torch.Tensor:
        """(U,) number of distinct items of each user."""
        return self.indptr[1:] - self.indptr[:-1]

    def row_ids(self) -> torch.Tensor:
        """(nnz,) the user of each stored entry."""
        return torch.repeat_interleave(
            torch.arange(self.num_users, device=self.device), self.degrees()
        )

    def keys(self) -> torch.Tensor:
        """(nnz,) sorted int64 keys ``user * I + item``, for membership by searchsorted.

        Built once per instance (the arrays are never modified): ranking calls
        :meth:`contains` once per chunk of users.
        """
        cached = self.__dict__.get("_keys")
        if cached is None:
            cached = self.row_ids() * self.num_items + self.indices
            object.__setattr__(self, "_keys", cached)
        return cached

    def gather(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Entries of the given rows: ``(row, item)`` with ``row`` indexing into ``users``.

        Args:
            users: (n,) int64 user ids on this device.

        Returns:
            (m,) positions in ``users`` and (m,) item ids, m = total degree of ``users``.
        """
        starts = self.indptr[users]
        counts = self.indptr[users + 1] - starts  # (n,)
        row = torch.repeat_interleave(torch.arange(users.numel(), device=self.device), counts)
        first = torch.cumsum(counts, 0) - counts  # (n,) offset of each row in the output
        pos = torch.arange(row.numel(), device=self.device) - first[row] + starts[row]
        return row, self.indices[pos]

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(n,) bool: whether each ``(users[j], items[j])`` is an interaction."""
        keys = self.keys()
        query = users * self.num_items + items
        pos = torch.searchsorted(keys, query).clamp_max(max(keys.numel() - 1, 0))
        return keys[pos] == query if keys.numel() else torch.zeros_like(query, dtype=torch.bool)

    def to(self, device: Union[str, torch.device]) -> UserItemIndex:
        return UserItemIndex(self.indptr.to(device), self.indices.to(device), self.num_items)


def user_items_from_pairs(
    users: ArrayLike,
    items: ArrayLike,
    num_users: int,
    num_items: int,
    device: Union[str, torch.device, None] = None,
) -> UserItemIndex:
    """Build :class:`UserItemIndex` from (E,) user and item id arrays, dropping duplicates."""
    num_users = check_int("num_users", num_users)
    num_items = check_int("num_items", num_items)
    dev = check_device(device)
    u = as_index_tensor("users", users, num_users, dev)
    i = as_index_tensor("items", items, num_items, dev)
    if u.numel() != i.numel():
        raise ValueError(
            f"users and items must have the same length. Got {u.numel()} and {i.numel()}."
        )
    key = torch.unique(u * num_items + i, sorted=True)  # (E,) sorted, deduplicated
    u = key // max(num_items, 1)
    indptr = torch.zeros(num_users + 1, dtype=torch.int64, device=dev)
    torch.cumsum(torch.bincount(u, minlength=num_users), 0, out=indptr[1:])
    return UserItemIndex(indptr, key % max(num_items, 1), num_items)


def user_items_from_csr(
    matrix: sp.spmatrix, device: Union[str, torch.device, None] = None, name: str = "user_items"
) -> UserItemIndex:
    """Build :class:`UserItemIndex` from a scipy users x items sparse matrix (any format).

    Explicit zeros are dropped; any stored positive value counts as one interaction;
    negative values are refused (they are not interactions to learn from).
    """
    if not sp.issparse(matrix):
        raise TypeError(
            f"{name} must be a scipy.sparse users x items matrix. Got {type(matrix).__name__}."
        )
    csr = sp.csr_matrix(matrix, copy=True)
    if csr.nnz and not np.all(np.isfinite(csr.data)):
        raise ValueError(f"{name} holds NaN or infinite values.")
    csr.sum_duplicates()  # before eliminate_zeros: duplicates may sum to an explicit zero
    csr.eliminate_zeros()
    if csr.nnz and csr.data.min() < 0:
        raise negative_values(f"{name} holds negative values")
    csr.sort_indices()
    dev = check_device(device)
    return UserItemIndex(
        torch.from_numpy(csr.indptr.astype(np.int64)).to(dev),
        torch.from_numpy(csr.indices.astype(np.int64)).to(dev),
        int(csr.shape[1]),
    )


def negative_values(what: str) -> ValueError:
    """The error for negative interaction values; ``what`` says where they are."""
    return ValueError(
        f"{what} (e.g. -1 for a dislike). LightGCN learns from positive interactions only "
        "and would count them as likes: drop them (or keep only ratings above a threshold) "
        "first."
    )


#: How an item-major matrix's rows are named in shape errors (``item_users`` of the fold-ins).
ITEM_ROWS = "items: row j holds the users of item j, an (m, U) matrix"


def as_user_items(
    data: Union[sp.spmatrix, UserItemIndex],
    num_users: int | None = None,
    device: Union[str, torch.device, None] = None,
    name: str = "user_items",
    rows: str = "users",
) -> UserItemIndex:
    """Accept a scipy matrix or :class:`UserItemIndex`; check its shape against ``num_users``
    (its number of rows, which hold ``rows``: users, or items for an item-major matrix)."""
    ui = data.to(check_device(device)) if isinstance(data, UserItemIndex) else None
    if ui is None:
        ui = user_items_from_csr(data, device, name)
    if num_users is not None and ui.num_users != num_users:
        raise ValueError(f"{name} must have {num_users} rows ({rows}). Got {ui.num_users}.")
    return ui


#: The former name, kept so that existing code keeps working.
UserItems = UserItemIndex
