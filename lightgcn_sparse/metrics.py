r"""Full-ranking top-K with seen items excluded, and the standard top-K metrics.

For a user :math:`u` with held-out items :math:`T_u` and top-K list
:math:`(r_1, \dots, r_K)`, with :math:`\mathrm{rel}_j = [r_j \in T_u]`:

* Recall@K :math:`= \sum_j \mathrm{rel}_j / |T_u|`
* Precision@K :math:`= \sum_j \mathrm{rel}_j / K`
* HitRate@K :math:`= [\sum_j \mathrm{rel}_j > 0]`
* NDCG@K :math:`= \mathrm{DCG} / \mathrm{IDCG}` with
  :math:`\mathrm{DCG} = \sum_j \mathrm{rel}_j / \log_2(j + 1)` and
  :math:`\mathrm{IDCG} = \sum_{j=1}^{\min(|T_u|, K)} 1 / \log_2(j + 1)`
* MAP@K :math:`= \frac{1}{\min(|T_u|, K)} \sum_j \mathrm{rel}_j \cdot \mathrm{Precision@}j`

Each metric is averaged over the users with at least one held-out item; users without
any are excluded (not counted as zeros). These are RecBole's definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Callable, NamedTuple, Optional

import torch

from ._checks import check_int, check_ks
from .user_items import UserItemIndex, as_user_items


def _recall(c) -> torch.Tensor:
    return c.n_hit / c.n_true


def _precision(c) -> torch.Tensor:
    return c.n_hit / c.k


def _hit(c) -> torch.Tensor:
    return (c.n_hit > 0).to(torch.float64)


def _ndcg(c) -> torch.Tensor:
    ideal = c.discount.cumsum(0)  # (K,) IDCG for min(|T|, K) = 1..K
    return (c.hits * c.discount[: c.k]).sum(1) / ideal[c.denom.long() - 1]


def _map(c) -> torch.Tensor:
    return (c.hits * c.cum_hits[:, : c.k] / c.pos[: c.k]).sum(1) / c.denom


class _Cut(NamedTuple):
    """What every metric needs at one cutoff ``k`` (all float64, ``n`` users)."""

    hits: torch.Tensor  # (n, k) 0/1, best first
    cum_hits: torch.Tensor  # (n, K) running hit counts
    n_hit: torch.Tensor  # (n,) hits in the top k
    n_true: torch.Tensor  # (n,) held-out items |T|
    denom: torch.Tensor  # (n,) min(|T|, k)
    pos: torch.Tensor  # (K,) ranks 1..K
    discount: torch.Tensor  # (K,) 1 / log2(rank + 1)
    k: int


#: Each metric is one function of a :class:`_Cut` giving (n,) per-user values; adding a
#: metric is adding its function here (its name is then reported and usable as ``name@k``).
METRIC_FUNCTIONS: dict[str, Callable[[_Cut], torch.Tensor]] = {
    "recall": _recall,
    "precision": _precision,
    "ndcg": _ndcg,
    "hit": _hit,
    "map": _map,
}
METRICS = tuple(METRIC_FUNCTIONS)
#: Bytes of scores one ranking chunk may hold; bounds memory for any number of users.
DEFAULT_CHUNK_BYTES = 256 * 2**20


def _chunk_rows(num_items: int, chunk_bytes: int, itemsize: int = 4) -> int:
    return max(1, chunk_bytes // max(1, num_items * itemsize))


def topk_scores(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    k: int,
    exclude: Optional[UserItemIndex] = None,
    users: Optional[torch.Tensor] = None,
    item_mask: Optional[torch.Tensor] = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` items by inner product for each row of ``user_emb``, in bounded memory.

    Args:
        user_emb: (n, d) embeddings of the users to rank for.
        item_emb: (I, d) item embeddings.
        k: list length, in ``[1, I]``.
        exclude: seen items to exclude, indexed by ``users`` (required with ``exclude``).
        users: (n,) ids of the rows of ``user_emb`` in ``exclude``.
        item_mask: (I,) bool, False for items never to recommend.
        chunk_bytes: memory for one chunk of (rows, I) scores.

    Returns:
        (n, k) int64 item ids and (n, k) scores, best first. Slots beyond the number of
        candidate items hold score ``-inf``.
    """
    _check_embeddings(user_emb, item_emb)
    num_items = item_emb.shape[0]
    k = check_int("k", k, low=1, high=max(num_items, 1))
    if exclude is not None:
        if users is None:
            raise ValueError("users must be given together with exclude.")
        exclude = _check_index("exclude", exclude, None, item_emb)
        if not isinstance(users, torch.Tensor) or users.shape != (user_emb.shape[0],):
            raise ValueError(
                f"users must be a ({user_emb.shape[0]},) tensor: the row of exclude of each "
                f"row of user_emb. Got {users!r:.60}."
            )
        users = users.to(device=user_emb.device, dtype=torch.int64)
        if users.numel() and (int(users.min()) < 0 or int(users.max()) >= exclude.num_users):
            raise ValueError(f"users must lie in [0, {exclude.num_users}), exclude's rows.")
    if item_mask is not None and (
        not isinstance(item_mask, torch.Tensor)
        or item_mask.dtype != torch.bool
        or item_mask.shape != (num_items,)
    ):
        raise ValueError(
            f"item_mask must be a ({num_items},) bool tensor. Got {item_mask!r:.60} instead."
        )
    return _topk(user_emb, item_emb, k, exclude, users, item_mask, chunk_bytes)


def _topk(user_emb, item_emb, k: int, exclude, users, item_mask, chunk_bytes: int):
    """:func:`topk_scores` of checked arguments: what the models' ``recommend`` and
    :func:`evaluate_ranking`'s loop call, with no O(I d) check per call."""
    rows = _chunk_rows(item_emb.shape[0], chunk_bytes, item_emb.element_size())
    ids, scores = [], []
    for s in range(0, user_emb.shape[0], rows):
        block = user_emb[s : s + rows] @ item_emb.T  # (rows, I)
        if exclude is not None:
            r, c = exclude.gather(users[s : s + rows])
            block[r, c] = float("-inf")
        if item_mask is not None:
            block[:, ~item_mask] = float("-inf")
        top = torch.topk(block, k, dim=1)
        ids.append(top.indices)
        scores.append(top.values)
    if not ids:
        empty = torch.empty(0, k, dtype=torch.int64, device=user_emb.device)
        return empty, torch.empty(0, k, dtype=item_emb.dtype, device=user_emb.device)
    return torch.cat(ids), torch.cat(scores)


def _check_embeddings(user_emb: torch.Tensor, item_emb: torch.Tensor) -> None:
    """Both (n, d) floating tensors of one d, dtype and device, finite."""
    for name, emb in (("user_emb", user_emb), ("item_emb", item_emb)):
        if not isinstance(emb, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor. Got {type(emb).__name__}.")
        if emb.dim() != 2 or not emb.is_floating_point():
            raise ValueError(
                f"{name} must be a 2-D floating tensor (rows, d). "
                f"Got shape {tuple(emb.shape)}, dtype {emb.dtype}."
            )
    if (user_emb.shape[1], user_emb.dtype, user_emb.device) != (
        item_emb.shape[1], item_emb.dtype, item_emb.device
    ):  # fmt: skip
        raise ValueError(
            "user_emb and item_emb must have the same d, dtype and device. Got "
            f"{user_emb.shape[1]}, {user_emb.dtype}, {user_emb.device} and "
            f"{item_emb.shape[1]}, {item_emb.dtype}, {item_emb.device}."
        )
    for name, emb in (("user_emb", user_emb), ("item_emb", item_emb)):
        if not bool(torch.isfinite(emb).all()):
            raise ValueError(f"{name} holds NaN or infinite values.")


def _check_index(name: str, data, num_users: Optional[int], item_emb: torch.Tensor):
    """``data`` (a UserItemIndex or scipy matrix) on ``item_emb``'s device, with
    ``num_users`` rows (if given) and one column per row of ``item_emb``."""
    index = as_user_items(data, num_users, item_emb.device, name)
    if index.num_items != item_emb.shape[0]:
        raise ValueError(
            f"{name} must have {item_emb.shape[0]} columns (items, the rows of item_emb). "
            f"Got {index.num_items}."
        )
    return index


def hits_at_k(topk: torch.Tensor, users: torch.Tensor, truth: UserItemIndex) -> torch.Tensor:
    """(n, K) bool: whether ``topk[j, r]`` is a held-out item of ``users[j]``."""
    k = topk.shape[1]
    return truth.contains(users.repeat_interleave(k), topk.reshape(-1)).reshape(-1, k)


def metrics_from_hits(
    hits: torch.Tensor, num_truth: torch.Tensor, ks: Iterable[int]
) -> dict[str, torch.Tensor]:
    """Per-user metrics at each cutoff from a hit matrix.

    Args:
        hits: (n, K) bool, ranked best first, K >= max(ks).
        num_truth: (n,) number of held-out items per user (all > 0).
        ks: cutoffs.

    Returns:
        ``{"recall@10": (n,) float64, ...}`` for every metric in :data:`METRICS`.
    """
    h = hits.to(torch.float64)
    n_true = num_truth.to(torch.float64)
    pos = torch.arange(1, h.shape[1] + 1, dtype=torch.float64, device=h.device)  # (K,)
    discount = 1.0 / torch.log2(pos + 1.0)
    cum_hits = h.cumsum(1)
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        cut = _Cut(h[:, :k], cum_hits, cum_hits[:, k - 1], n_true,
                   torch.clamp(n_true, max=k), pos, discount, k)  # fmt: skip
        for name, fn in METRIC_FUNCTIONS.items():
            out[f"{name}@{k}"] = fn(cut)
    return out


def evaluate_ranking(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    truth: UserItemIndex,
    exclude: Optional[UserItemIndex] = None,
    ks: Sequence[int] = (10, 20),
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> dict[str, float]:
    """Mean Recall/Precision/NDCG/HitRate/MAP@K over users with held-out items.

    Args:
        user_emb: (U, d) embeddings of all users.
        item_emb: (I, d) embeddings of all items.
        truth: held-out interactions (e.g. the test split), U rows.
        exclude: interactions to drop from the ranking (e.g. train, or train + valid).
        ks: cutoffs, each in ``[1, I]``.

    Returns:
        ``{"recall@20": 0.34, ..., "users": n}`` with plain Python floats.
    """
    _check_embeddings(user_emb, item_emb)
    ks = list(check_ks(ks, high=max(item_emb.shape[0], 1)))
    truth = _check_index("truth", truth, user_emb.shape[0], item_emb)
    if exclude is not None:
        exclude = _check_index("exclude", exclude, user_emb.shape[0], item_emb)
    deg = truth.degrees()
    users = torch.nonzero(deg > 0).reshape(-1)  # (n,)
    sums: dict[str, float] = {}
    rows = _chunk_rows(item_emb.shape[0], chunk_bytes, item_emb.element_size())
    for s in range(0, users.numel(), rows):
        u = users[s : s + rows]
        top, top_scores = _topk(user_emb[u], item_emb, ks[-1], exclude, u, None, chunk_bytes)
        # slots past a user's last candidate hold excluded items at -inf: never a hit
        hits = hits_at_k(top, u, truth) & (top_scores != float("-inf"))
        per_user = metrics_from_hits(hits, deg[u], ks)
        for name, v in per_user.items():
            sums[name] = sums.get(name, 0.0) + float(v.sum())
    n = users.numel()
    names = [f"{m}@{k}" for m in METRICS for k in ks]
    result = {name: sums[name] / n if n else float("nan") for name in sorted(names)}
    result["users"] = n
    return result
