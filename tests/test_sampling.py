"""BPRSampler: negatives are exact, uniform and never positive; epochs cover every pair once."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st
from scipy.stats import chisquare
from strategies import Graph, bipartite_graphs

from lightgcn_sparse.sampling import BPRSampler, sample_negatives
from lightgcn_sparse.user_items import user_items_from_pairs


def sampler_of(g: Graph, device="cpu") -> BPRSampler:
    return BPRSampler.from_pairs(g.users, g.items, g.num_users, g.num_items, device=device)


def item_sets(g: Graph) -> list[set[int]]:
    sets: list[set[int]] = [set() for _ in range(g.num_users)]
    for u, i in g.pairs():
        sets[u].add(i)
    return sets


def generator(device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@given(g=bipartite_graphs(min_items=1), seed=st.integers(0, 2**32 - 1))
def test_negatives_never_positive_nor_out_of_range(device, g, seed):
    sets = item_sets(g)
    sampler = sampler_of(g, device)
    users = [u for u in range(g.num_users) if len(sets[u]) < g.num_items] * 20
    neg = sampler.negatives(torch.tensor(users, dtype=torch.int64), generator(device, seed))
    assert neg.dtype == torch.int64 and neg.device.type == device and neg.shape == (len(users),)
    for u, i in zip(users, neg.tolist()):
        assert 0 <= i < g.num_items
        assert i not in sets[u], f"user {u} got positive {i} as a negative"


@given(g=bipartite_graphs(), seed=st.integers(0, 2**32 - 1))
def test_eligible_and_full_users(device, g, seed):
    sets = item_sets(g)
    sampler = sampler_of(g, device)
    eligible = [u for u in range(g.num_users) if 0 < len(sets[u]) < g.num_items]
    full = [u for u in range(g.num_users) if sets[u] and len(sets[u]) == g.num_items]
    note(f"eligible={eligible} full={full}")
    assert sampler.eligible_users.tolist() == eligible
    assert sampler.full_users.tolist() == full
    if not eligible:
        with pytest.raises(ValueError, match="no user has both an interaction and a non-inter"):
            sampler.sample_users(4, generator(device, seed))
        return
    users, pos, neg = sampler.sample_users(64, generator(device, seed))
    assert users.shape == pos.shape == neg.shape == (64,)
    for u, p, n in zip(users.tolist(), pos.tolist(), neg.tolist()):
        assert u in eligible and u not in full
        assert p in sets[u]
        assert 0 <= n < g.num_items and n not in sets[u]


@given(g=bipartite_graphs(), batch_size=st.integers(1, 16), seed=st.integers(0, 2**32 - 1))
def test_epoch_visits_every_eligible_interaction_once(device, g, batch_size, seed):
    sets = item_sets(g)
    sampler = sampler_of(g, device)
    expected = Counter(
        (u, i) for u in range(g.num_users) if len(sets[u]) < g.num_items for i in sets[u]
    )
    if not expected:
        with pytest.raises(ValueError, match="no user has both"):
            next(sampler.epoch(batch_size, generator(device, seed)))
        return
    seen: Counter = Counter()
    batches = list(sampler.epoch(batch_size, generator(device, seed)))
    assert len(batches) == math.ceil(sum(expected.values()) / batch_size)
    for k, (users, pos, neg) in enumerate(batches):
        assert users.shape == pos.shape == neg.shape
        assert users.numel() == batch_size or k == len(batches) - 1
        assert users.device.type == device
        for u, p, n in zip(users.tolist(), pos.tolist(), neg.tolist()):
            seen[(u, p)] += 1
            assert 0 <= n < g.num_items and n not in sets[u]
    assert seen == expected


@given(g=bipartite_graphs(min_users=1, min_items=2, max_edges=20), seed=st.integers(0, 2**32 - 1))
def test_reproducible_with_same_seed(device, g, seed):
    sampler = sampler_of(g, device)
    if sampler.eligible_users.numel() == 0:
        return
    a = sampler.sample_users(32, generator(device, seed))
    b = sampler.sample_users(32, generator(device, seed))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    ea = list(sampler.epoch(3, generator(device, seed)))
    eb = list(sampler.epoch(3, generator(device, seed)))
    assert len(ea) == len(eb)
    for ba, bb in zip(ea, eb):
        for x, y in zip(ba, bb):
            assert torch.equal(x, y)


def test_different_seeds_differ(device):
    sampler = BPRSampler.from_pairs([0, 1], [0, 1], 2, 1000, device=device)
    a = sampler.negatives(torch.zeros(100, dtype=torch.int64), generator(device, 1))
    b = sampler.negatives(torch.zeros(100, dtype=torch.int64), generator(device, 2))
    assert not torch.equal(a, b)


# --- uniformity -------------------------------------------------------------------------

NUM_ITEMS = 10
#: users with different degrees: none, one, scattered, prefix, suffix, one free item, all
USER_ITEMS = [
    [],
    [0],
    [1, 3, 5, 7],
    [0, 1, 2],
    [7, 8, 9],
    [0, 1, 2, 3, 5, 6, 7, 8, 9],
    list(range(10)),
]


@pytest.fixture(scope="module")
def pairs() -> tuple[list[int], list[int]]:
    users = [u for u, its in enumerate(USER_ITEMS) for _ in its]
    items = [i for its in USER_ITEMS for i in its]
    return users, items


def test_negatives_uniform_over_complement(device, pairs):
    sampler = BPRSampler.from_pairs(*pairs, len(USER_ITEMS), NUM_ITEMS, device=device)
    assert sampler.full_users.tolist() == [6]
    draws = 4000
    gen = generator(device, 12345)
    for u, its in enumerate(USER_ITEMS[:-1]):
        neg = sampler.negatives(torch.full((draws,), u), gen).cpu().numpy()
        free = [i for i in range(NUM_ITEMS) if i not in its]
        counts = np.array([(neg == i).sum() for i in free])
        assert counts.sum() == draws, f"user {u} drew a positive or out-of-range item"
        if len(free) == 1:  # a single free item: every draw must be it
            assert set(neg.tolist()) == {free[0]}
            continue
        p = chisquare(counts).pvalue
        assert p > 1e-3, f"user {u}: counts {counts.tolist()} not uniform (p={p:.2g})"


def test_positives_and_users_uniform(device, pairs):
    sampler = BPRSampler.from_pairs(*pairs, len(USER_ITEMS), NUM_ITEMS, device=device)
    eligible = [u for u, its in enumerate(USER_ITEMS) if 0 < len(its) < NUM_ITEMS]
    assert sampler.eligible_users.tolist() == eligible
    users, pos, _ = sampler.sample_users(20000, generator(device, 7))
    users, pos = users.cpu().numpy(), pos.cpu().numpy()
    counts = np.array([(users == u).sum() for u in eligible])
    assert counts.sum() == users.size
    assert chisquare(counts).pvalue > 1e-3
    for u in eligible:
        its = USER_ITEMS[u]
        mine = pos[users == u]
        pc = np.array([(mine == i).sum() for i in its])
        assert pc.sum() == mine.size, f"user {u} drew a non-interacted positive"
        if len(its) > 1:
            assert chisquare(pc).pvalue > 1e-3


def test_full_user_has_no_negative(device, pairs):
    sampler = BPRSampler.from_pairs(*pairs, len(USER_ITEMS), NUM_ITEMS, device=device)
    with pytest.raises(ValueError, match=r"user 6 has interacted with all 10 items"):
        sampler.negatives(torch.tensor([0, 6, 1]))
    for users, _, _ in sampler.epoch(5, generator(device, 0)):
        assert 6 not in users.tolist() and 0 not in users.tolist()


@given(g=bipartite_graphs(min_items=1), seed=st.integers(0, 2**32 - 1))
def test_sample_negatives_convenience(g, seed):
    sets = item_sets(g)
    keep = [j for j, u in enumerate(g.users.tolist()) if len(sets[u]) < g.num_items]
    users, items = g.users[keep], g.items[keep]
    neg = sample_negatives(
        users, items, g.num_items, g.num_users, torch.Generator().manual_seed(seed)
    )
    assert neg.shape == (len(keep),)
    own = item_sets(Graph(g.num_users, g.num_items, users, items))
    for u, n in zip(users.tolist(), neg.tolist()):
        assert 0 <= n < g.num_items and n not in own[u]


def test_sampler_from_user_items_matches_from_pairs():
    ui = user_items_from_pairs([0, 0, 1], [2, 0, 1], 3, 4)
    a = BPRSampler(ui).negatives([0, 1, 2] * 10, torch.Generator().manual_seed(3))
    b = BPRSampler.from_pairs([0, 0, 1], [2, 0, 1], 3, 4).negatives(
        [0, 1, 2] * 10, torch.Generator().manual_seed(3)
    )
    assert torch.equal(a, b)


# --- bad input --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> BPRSampler:
    return BPRSampler.from_pairs([0, 1, 1], [0, 0, 1], 3, 2)  # user 1 has every item


def test_user_with_every_item_raises(small):
    assert small.full_users.tolist() == [1]
    with pytest.raises(ValueError, match=r"user 1 has interacted with all 2 items"):
        small.negatives([1])


@pytest.mark.parametrize(
    "users,exc,match",
    [
        ([3], ValueError, r"users must lie in \[0, 3\)\. Got id 3"),
        ([-1], ValueError, r"users must lie in \[0, 3\)\. Got id -1"),
        ([0.0], TypeError, r"users must hold integer ids\. Got dtype float64"),
        (torch.tensor([0.5]), TypeError, r"users must hold integer ids\. Got dtype torch\.float32"),
    ],
)
def test_bad_users_raise(small, users, exc, match):
    with pytest.raises(exc, match=match):
        small.negatives(users)


@pytest.mark.parametrize("batch_size", [0, -3])
def test_bad_batch_size_raises(small, batch_size):
    with pytest.raises(
        ValueError, match=rf"batch_size must be an int in \[1, inf\)\. Got {batch_size}"
    ):
        small.sample_users(batch_size)
    with pytest.raises(ValueError, match=rf"batch_size must be an int .*Got {batch_size}"):
        next(small.epoch(batch_size))


def test_float_batch_size_raises(small):
    with pytest.raises(TypeError, match=r"batch_size must be an int .*Got 2\.0"):
        small.sample_users(2.0)


def test_not_user_items_raises():
    with pytest.raises(TypeError, match=r"interactions must be a UserItemIndex\. Got list"):
        BPRSampler([[0, 1]])


def test_positive_of_user_without_items_raises(small):
    with pytest.raises(ValueError, match=r"user 2 has no interactions to draw from"):
        small.positives(torch.tensor([0, 2]))


def test_no_eligible_user_raises():
    sampler = BPRSampler.from_pairs([0, 0], [0, 1], 2, 2)  # user 0 full, user 1 empty
    with pytest.raises(ValueError, match=r"no user has both an interaction and a non-interacted"):
        sampler.sample_users(1)
    with pytest.raises(ValueError, match=r"no user has both"):
        list(sampler.epoch(1))
