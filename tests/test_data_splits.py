"""Tests for lightgcn_sparse.data.splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_data_common import benchmark_dir, write

from lightgcn_sparse import data as D
from lightgcn_sparse.data import (
    Interactions,
    Split,
    default_split,
    load_benchmark,
    load_csv,
    split_interactions,
)

# ----------------------------------------------------------------------------- splits


def synthetic(num_users: int = 40, num_items: int = 30, seed: int = 0) -> Interactions:
    """Users with 1..25 interactions; timestamps are unique ids of the interactions, with
    some per-user ties in time broken by position; about 20 % of the interactions are in
    the test part of ``parts``, the rest in train."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 26, size=num_users)
    users = np.repeat(np.arange(num_users), counts)
    rng.shuffle(users)
    n = len(users)
    items = rng.integers(0, num_items, size=n)
    ratings = rng.integers(1, 6, size=n)
    return Interactions(
        users=users,
        items=items,
        num_users=num_users,
        num_items=num_items,
        user_ids=np.arange(num_users) + 100,
        item_ids=np.arange(num_items) + 1000,
        ratings=ratings,
        timestamps=np.arange(n),  # identifies each interaction
        parts=np.where(rng.random(n) < 0.2, 2, 0),
    )


def recbole_counts(total: int, ratios: list[float]) -> list[int]:
    """RecBole 1.2.1 Dataset._calcu_split_ids, turned into part sizes."""
    cnt = [int(ratios[i] * total) for i in range(len(ratios))]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def per_user(part: Interactions, num_users: int) -> np.ndarray:
    return np.bincount(part.users, minlength=num_users)


@pytest.mark.parametrize("method", D.SPLIT_METHODS)
def test_split_partitions_exactly(method: str) -> None:
    data = synthetic()
    split = split_interactions(data, method, seed=5)
    stamps = np.concatenate([p.timestamps for p in split])
    assert sorted(stamps.tolist()) == list(range(data.num_interactions))
    for part in split:
        assert part.num_users == data.num_users and part.num_items == data.num_items
        assert part.user_ids is data.user_ids
        np.testing.assert_array_equal(part.users, data.users[part.timestamps])
        np.testing.assert_array_equal(part.items, data.items[part.timestamps])
        assert np.all(np.diff(part.timestamps) > 0)  # original order kept


@pytest.mark.parametrize("method", ["random", "global", "stratified"])
def test_split_deterministic_given_seed(method: str) -> None:
    data = synthetic()
    a = split_interactions(data, method, seed=1)
    b = split_interactions(data, method, seed=1)
    c = split_interactions(data, method, seed=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.timestamps, y.timestamps)
    assert not np.array_equal(a.test.timestamps, c.test.timestamps)


def test_random_split_matches_recbole_counts() -> None:
    data = synthetic()
    ratios = [0.8, 0.1, 0.1]
    split = split_interactions(data, "random", seed=0)
    totals = per_user(data, data.num_users)
    got = np.stack([per_user(p, data.num_users) for p in split], axis=1)
    expected = np.array([recbole_counts(int(t), ratios) for t in totals])
    np.testing.assert_array_equal(got, expected)


def test_random_split_custom_ratios_are_normalized() -> None:
    data = synthetic(seed=3)
    split = split_interactions(data, "random", ratios=(6, 2, 2), seed=0)
    totals = per_user(data, data.num_users)
    expected = np.array([recbole_counts(int(t), [0.6, 0.2, 0.2]) for t in totals])
    got = np.stack([per_user(p, data.num_users) for p in split], axis=1)
    np.testing.assert_array_equal(got, expected)


def test_global_split_sizes() -> None:
    data = synthetic()
    n = data.num_interactions
    split = split_interactions(data, "global", seed=0)
    assert [len(p) for p in split] == recbole_counts(n, [0.8, 0.1, 0.1])
    two_way = split_interactions(data, "global", ratios=(0.7, 0.3))
    assert len(two_way.valid) == 0 and len(two_way.test) == int(0.3 * n)


def test_stratified_split_counts() -> None:
    data = synthetic()
    split = split_interactions(data, "stratified", seed=0)
    assert len(split.valid) == 0
    totals = per_user(data, data.num_users)
    expected_train = [sum(k / t <= 0.75 for k in range(1, t + 1)) for t in totals]
    assert per_user(split.train, data.num_users).tolist() == expected_train
    three = split_interactions(data, "stratified", ratios=(0.6, 0.2, 0.2), seed=0)
    assert len(three.valid) > 0


def test_temporal_split_takes_latest() -> None:
    users = np.array([0, 0, 0, 1, 1, 2, 0])
    stamps = np.array([10, 30, 20, 5, 5, 7, 30])  # user 0 ties at 30, user 1 ties at 5
    data = Interactions(
        users=users,
        items=np.arange(7),
        num_users=3,
        num_items=7,
        user_ids=np.arange(3),
        item_ids=np.arange(7),
        timestamps=stamps,
    )
    train, valid, test = split_interactions(data, "temporal")
    # Ties break by position: the later row counts as later.
    assert sorted(test.items.tolist()) == [4, 6]
    assert valid.items.tolist() == [1]
    assert sorted(train.items.tolist()) == [0, 2, 3, 5]  # user 2's only interaction stays


def test_split_argument_errors() -> None:
    data = synthetic()
    with pytest.raises(ValueError, match="method must be one of"):
        split_interactions(data, "leave-one-out")
    with pytest.raises(ValueError, match="ratios"):
        split_interactions(data, "random", ratios=(0.5,))
    with pytest.raises(ValueError, match="train > 0"):
        split_interactions(data, "random", ratios=(0, 0.5, 0.5))
    with pytest.raises(ValueError, match="ratios is not used"):
        split_interactions(data, "temporal", ratios=(0.8, 0.2))
    with pytest.raises(ValueError, match="ratios is not used by method 'given'"):
        split_interactions(data, "given", ratios=(0.8, 0.2))
    with pytest.raises(ValueError, match="valid_fraction is only used by method 'given'"):
        split_interactions(data, "random", valid_fraction=0.1)
    for bad in (1, 1.5, -0.1, "0.1", True):
        with pytest.raises(ValueError, match=r"valid_fraction must be a number in \[0, 1\)"):
            split_interactions(data, "given", valid_fraction=bad)
    with pytest.raises(ValueError, match="seed"):
        split_interactions(data, "random", seed=-1)
    with pytest.raises(TypeError, match="data must be Interactions"):
        split_interactions(data.to_csr(), "random")
    no_time = Interactions(
        users=np.array([0]),
        items=np.array([0]),
        num_users=1,
        num_items=1,
        user_ids=np.array([1]),
        item_ids=np.array([1]),
        name="pairs",
    )
    with pytest.raises(ValueError, match="needs timestamps.*pairs"):
        split_interactions(no_time, "temporal")


def pairs_by_part(split: Split) -> list[Counter]:
    """The (raw user, raw item) pairs of each part, duplicates counted."""
    return [Counter(zip(p.user_ids[p.users].tolist(), p.item_ids[p.items].tolist())) for p in split]


@pytest.mark.parametrize("method", ["random", "global", "stratified"])
def test_split_ignores_the_order_of_lines(tmp_path: Path, method: str) -> None:
    rng = np.random.default_rng(0)
    n = 400
    rows = [
        f"u{u},i{i},{r},{t}"
        for u, i, r, t in zip(
            rng.integers(0, 25, n),
            rng.integers(0, 40, n),
            rng.integers(1, 6, n),
            rng.integers(0, 9, n),
        )
    ]
    rows += rows[:30]  # exact duplicates too
    original = write(tmp_path / "a.csv", "\n".join(rows) + "\n")
    shuffled = write(tmp_path / "b.csv", "\n".join(rng.permutation(rows)) + "\n")
    a = split_interactions(load_csv(original), method, seed=4)
    b = split_interactions(load_csv(shuffled), method, seed=4)
    assert pairs_by_part(a) == pairs_by_part(b)


# ----------------------------------------------------------------------------- given


def test_given_keeps_the_files_parts_and_carves_valid_from_train() -> None:
    data = synthetic()
    split = split_interactions(data, "given", seed=3)
    np.testing.assert_array_equal(np.sort(split.test.timestamps), np.flatnonzero(data.parts == 2))
    train_rows = np.sort(np.concatenate([split.train.timestamps, split.valid.timestamps]))
    np.testing.assert_array_equal(train_rows, np.flatnonzero(data.parts == 0))
    per_user_train = per_user(data.subset(data.parts == 0), data.num_users)
    expected = np.array([recbole_counts(int(t), [0.9, 0.1]) for t in per_user_train])
    got = np.stack([per_user(p, data.num_users) for p in split[:2]], axis=1)
    np.testing.assert_array_equal(got, expected)
    assert got[per_user_train == 1, 1].sum() == 0  # one train interaction: stays in train
    assert got[per_user_train >= 2, 1].min() >= 1
    other_seed = split_interactions(data, "given", seed=4)
    assert not np.array_equal(split.valid.timestamps, other_seed.valid.timestamps)


def test_given_valid_fraction() -> None:
    data = synthetic()
    none = split_interactions(data, "given", valid_fraction=0)
    assert len(none.valid) == 0 and len(none.train) == int(np.sum(data.parts == 0))
    half = split_interactions(data, "given", valid_fraction=0.5, seed=1)
    per_user_train = per_user(data.subset(data.parts == 0), data.num_users)
    expected = [recbole_counts(int(t), [0.5, 0.5])[1] for t in per_user_train]
    assert per_user(half.valid, data.num_users).tolist() == expected


def test_given_uses_valid_file(tmp_path: Path) -> None:
    data = load_benchmark(benchmark_dir(tmp_path, valid="2 5\n0 4\n"))
    train, valid, test = split_interactions(data, "given", seed=9)
    assert sorted(zip(valid.users.tolist(), valid.items.tolist())) == [(0, 4), (2, 5)]
    assert len(train) == 5 and len(test) == 4
    with pytest.raises(ValueError, match="valid_fraction is not used when the files hold"):
        split_interactions(data, "given", valid_fraction=0.2)


def test_given_carve_out_ignores_line_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    lines = [f"{u} " + " ".join(map(str, rng.choice(50, 12, replace=False))) for u in range(30)]
    test = "".join(f"{u} {u}\n" for u in range(30))
    a = load_benchmark(benchmark_dir(tmp_path / "a", train="\n".join(lines), test=test))
    shuffled = [" ".join([line.split()[0], *rng.permutation(line.split()[1:])]) for line in lines]
    b = load_benchmark(
        benchmark_dir(tmp_path / "b", train="\n".join(rng.permutation(shuffled)), test=test)
    )
    assert pairs_by_part(split_interactions(a, "given")) == pairs_by_part(
        split_interactions(b, "given")
    )


def test_given_needs_parts_and_default_split(tmp_path: Path) -> None:
    plain = load_csv(write(tmp_path / "p.csv", "1,2\n2,3\n"))
    assert default_split(plain) == "random"
    with pytest.raises(ValueError, match="method 'given' needs the train/test parts.*'random'"):
        split_interactions(plain, "given")
    assert default_split(load_benchmark(benchmark_dir(tmp_path))) == "given"
