"""The graphs the benchmarks run on: ml-100k (through the package), synthetic power laws, hubs."""

from __future__ import annotations

from dataclasses import dataclass

import click
import numpy as np

from lightgcn_sparse.data import DatasetNotFoundError, load_dataset

from .report import fmt_count


@dataclass
class EdgeList:
    """A bipartite graph as (E,) user and item ids, with where it came from."""

    name: str
    users: np.ndarray  # (E,) int64
    items: np.ndarray  # (E,) int64
    num_users: int
    num_items: int
    source: str

    @property
    def num_edges(self) -> int:
        return int(self.users.size)

    def item_degrees(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.num_items)


def zipf_ranks(n: int, exponent: float, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` ranks in ``[0, n)`` with ``P(rank r) ~ (r + 1) ** -exponent`` (continuous inverse CDF).

    The continuous power law on ``[1, n + 1)`` is sampled in closed form and floored, which
    is Zipf-like without a search over ``n`` cumulative weights.
    """
    q = rng.random(m)
    s = float(exponent)
    if abs(s - 1.0) < 1e-9:
        x = np.exp(q * np.log(n + 1.0))
    else:
        x = (1.0 + q * ((n + 1.0) ** (1.0 - s) - 1.0)) ** (1.0 / (1.0 - s))
    return np.minimum(x.astype(np.int64) - 1, n - 1)


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` by sort + mask (numpy 2.4's ``unique`` is far slower on 10M int64)."""
    keys = np.sort(keys)
    if keys.size:
        keep = np.empty(keys.size, dtype=bool)
        keep[0] = True
        np.not_equal(keys[1:], keys[:-1], out=keep[1:])
        keys = keys[keep]
    return keys


def _check_sparse(num_users: int, num_items: int, num_edges: int) -> None:
    if num_users < 1 or num_items < 1 or num_edges < 1:
        raise ValueError(
            f"users, items and edges must be >= 1. Got {num_users}, {num_items}, {num_edges}."
        )
    if num_edges > 0.5 * num_users * num_items:
        raise ValueError(
            f"edges must be at most half of users * items = {num_users * num_items} for a "
            f"sparse graph. Got {num_edges}."
        )


def powerlaw_bipartite(
    num_users: int,
    num_items: int,
    num_edges: int,
    *,
    item_exponent: float = 0.8,
    user_exponent: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic implicit-feedback graph: ``num_edges`` distinct (user, item) pairs.

    Item popularity is Zipf-like (the item of popularity rank ``r`` is drawn with weight
    ``r ** -item_exponent``) and user activity likewise with ``user_exponent``; ranks are
    assigned to ids by a random permutation, so popular ids are scattered as in real data.
    Duplicate pairs are dropped and redrawn until exactly ``num_edges`` distinct pairs exist.

    Returns:
        (E,) int64 users and (E,) int64 items, sorted user-major.
    """
    _check_sparse(num_users, num_items, num_edges)
    rng = np.random.default_rng(seed)
    uids, iids = rng.permutation(num_users), rng.permutation(num_items)
    keys = np.empty(0, dtype=np.int64)
    for rounds in range(1000):
        missing = num_edges - keys.size
        if missing <= 0:
            break
        m = int(missing * 1.15) + 64
        if rounds < 20:
            u = uids[zipf_ranks(num_users, user_exponent, m, rng)]
            i = iids[zipf_ranks(num_items, item_exponent, m, rng)]
        else:  # the popular pairs are taken: fill the rest uniformly
            u, i = rng.integers(0, num_users, m), rng.integers(0, num_items, m)
        keys = sorted_unique(np.concatenate([keys, u.astype(np.int64) * num_items + i]))
    if keys.size > num_edges:
        keys = np.sort(rng.choice(keys, num_edges, replace=False))
    return keys // num_items, keys % num_items


def pareto_degrees(num_items: int, num_edges: int, hub_degree: int) -> np.ndarray:
    """Item degrees by popularity rank: about ``min(hub_degree, c / r)`` for ``r = 1..I``.

    Pareto popularity (Zipf exponent 1) whose scale ``c`` is calibrated by bisection so that
    the degrees sum to ``num_edges`` exactly: the head is a plateau of items with
    ``hub_degree`` users each, then the ``1 / r`` tail; every item keeps at least one user.
    """
    if not num_items <= num_edges <= hub_degree * num_items:
        raise ValueError(
            f"need items <= edges <= hub_degree * items. Got {num_items} items, "
            f"{num_edges} edges, hub_degree {hub_degree}."
        )
    ranks = np.arange(1, num_items + 1, dtype=np.float64)

    def degrees(c: float) -> tuple[np.ndarray, np.ndarray]:
        target = np.minimum(hub_degree, c / ranks)
        return target, np.maximum(1, np.floor(target)).astype(np.int64)

    lo, hi = 0.0, float(hub_degree) * num_items  # degrees(hi) are all hub_degree
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if degrees(mid)[1].sum() <= num_edges else (lo, mid)
    target, deg = degrees(lo)
    short = num_edges - int(deg.sum())  # >= 0: round up the largest remainders
    deg[np.argsort(deg - target, kind="stable")[:short]] += 1
    return deg


def hub_bipartite(
    num_users: int,
    num_items: int,
    num_edges: int,
    hub_degree: int,
    *,
    user_exponent: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A hub-heavy graph: item degrees exactly :func:`pareto_degrees`, users Zipf-like.

    Each item's users are drawn with weight ``rank ** -user_exponent`` (distinct per item,
    redrawn until every item has its degree); ranks map to ids by random permutations.

    Returns:
        (E,) int64 users and (E,) int64 items, sorted user-major.
    """
    _check_sparse(num_users, num_items, num_edges)
    if hub_degree > num_users:
        raise ValueError(f"hub_degree must be <= users = {num_users}. Got {hub_degree}.")
    rng = np.random.default_rng(seed)
    uids, iids = rng.permutation(num_users), rng.permutation(num_items)
    want = pareto_degrees(num_items, num_edges, hub_degree)[np.argsort(iids)]  # by item id
    keys = np.empty(0, dtype=np.int64)
    for rounds in range(1000):
        have = np.bincount(keys // num_users, minlength=num_items)
        missing = want - have
        if not missing.any():
            break
        items = np.repeat(np.arange(num_items), (missing * 1.2).astype(np.int64) + 2)
        if rounds < 20:
            users = uids[zipf_ranks(num_users, user_exponent, items.size, rng)]
        else:  # the hubs' popular users are taken: fill the rest uniformly
            users = rng.integers(0, num_users, items.size)
        new = sorted_unique(items.astype(np.int64) * num_users + users)
        new = new[~np.isin(new, keys, assume_unique=True)]
        new = new[rng.permutation(new.size)]  # keep a random subset of each item's new users
        new = new[np.argsort(new // num_users, kind="stable")]
        item = new // num_users
        first = np.searchsorted(item, np.arange(num_items))
        rank = np.arange(new.size) - first[item]
        keys = np.sort(np.concatenate([keys, new[rank < missing[item]]]))
    users, items = keys % num_users, keys // num_users
    order = np.argsort(users * num_items + items)
    return users[order], items[order]


def scaled_shape(num_edges: int) -> tuple[int, int]:
    """Users and items for a synthetic graph of ``num_edges``: 20 edges per user, 100 per item.

    At 20M edges that is 1M users and 200k items; smaller graphs scale down linearly (tiny
    ones get enough items to stay at most 25% dense).
    """
    users = max(8, num_edges // 20)
    return users, max(8, num_edges // 100, -(-4 * num_edges // users))


def hub_shape(num_edges: int) -> tuple[int, int, int]:
    """Users, items and hub degree of the hub graph of ``num_edges``: E/10, E/50, E/50.

    At 1M edges: 100k users, 20k items, hubs of 20k users (a fifth of all users).
    """
    users = max(10, num_edges // 10)
    items = max(4, num_edges // 50, -(-2 * num_edges // users))
    return users, items, max(2, min(users, num_edges // 50))


def load_ml100k(real: bool = True) -> EdgeList:
    """MovieLens-100K from the package's data loader (no download: the cache or recbole's
    copy), else, or with ``real=False``, a synthetic graph of its shape."""
    if real:
        try:
            table = load_dataset("ml-100k", download=False, progress=False)
        except DatasetNotFoundError:
            pass
        else:
            return EdgeList("ml-100k", table.users, table.items, table.num_users,
                            table.num_items, f"ml-100k (real, {table.format} files)")  # fmt: skip
    u, i = powerlaw_bipartite(943, 1682, 100_000, item_exponent=0.8, user_exponent=0.5)
    return EdgeList("ml-100k", u, i, 943, 1682, "ml-100k-shaped (synthetic)")


def graph_shapes(
    edges: tuple[int, ...], users: tuple[int, ...], items: tuple[int, ...]
) -> list[tuple[int, int]]:
    """(users, items) of each ``--edges`` graph: ``--users``/``--items`` or :func:`scaled_shape`."""
    if not (users or items):
        return [scaled_shape(e) for e in edges]
    if not (len(users) == len(items) == len(edges)):
        raise click.BadParameter(
            f"give --users and --items once per --edges, or neither. Got {len(users)} "
            f"--users, {len(items)} --items and {len(edges)} --edges.",
            param_hint="--users/--items",
        )
    return list(zip(users, items))


def build_graphs(
    edges: tuple[int, ...],
    users: tuple[int, ...],
    items: tuple[int, ...],
    ml100k: bool,
    real: bool,
    seed: int,
    hub_edges: int = 0,
) -> list[EdgeList]:
    """The graphs the ``--ml100k``, ``--edges`` (``--users``/``--items``) and hub options
    name, in that order; raises ``click.BadParameter`` for an impossible shape."""
    graphs = [load_ml100k(real)] if ml100k else []
    for e, (nu, ni) in zip(edges, graph_shapes(edges, users, items)):
        try:
            u, i = powerlaw_bipartite(nu, ni, e, seed=seed)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--edges") from err
        graphs.append(EdgeList(f"powerlaw-{fmt_count(e)}", u, i, nu, ni, "synthetic power-law"))
    if hub_edges:
        nu, ni, hub = hub_shape(hub_edges)
        try:
            u, i = hub_bipartite(nu, ni, hub_edges, hub, seed=seed)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--hub-edges") from err
        source = f"synthetic hubs (Pareto 1/r items capped at {hub} users)"
        graphs.append(EdgeList(f"hubs-{fmt_count(hub_edges)}", u, i, nu, ni, source))
    return graphs
