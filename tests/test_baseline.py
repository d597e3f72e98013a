"""Tests for lightgcn_sparse.baseline."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lightgcn_sparse.baseline import Popularity, popularity_scores

# 4 users x 5 items; item popularity (distinct users): [1, 3, 0, 2, 3]
DENSE = np.array(
    [
        [1, 1, 0, 0, 1],
        [0, 1, 0, 1, 1],
        [0, 1, 0, 1, 0],
        [0, 0, 0, 0, 1],
    ],
    dtype=np.float32,
)


@pytest.fixture
def user_items() -> sp.csr_matrix:
    return sp.csr_matrix(DENSE)


@pytest.fixture
def model(user_items: sp.csr_matrix) -> Popularity:
    return Popularity().fit(user_items)


def test_popularity_scores_counts_distinct_users() -> None:
    rows = np.array([0, 0, 1, 2, 2])
    cols = np.array([1, 1, 1, 0, 2])
    data = np.array([1.0, 4.0, 2.0, 0.0, 1.0])  # a repeated pair and an explicit zero
    matrix = sp.coo_matrix((data, (rows, cols)), shape=(3, 4))
    scores = popularity_scores(matrix)
    assert scores.dtype == np.float32
    assert scores.tolist() == [0, 2, 1, 0]
    with pytest.raises(TypeError, match="train_csr"):
        popularity_scores(np.ones((2, 2)))


def test_recommend_one_user(model: Popularity, user_items: sp.csr_matrix) -> None:
    ids, scores = model.recommend(2, user_items[2], N=3)
    assert ids.dtype == np.int32 and scores.dtype == np.float32
    assert ids.tolist() == [4, 0, 2]  # 1 and 3 are already liked; ties by lower id
    assert scores.tolist() == [3, 1, 0]


def test_recommend_without_filter(model: Popularity) -> None:
    ids, scores = model.recommend(2, None, N=3, filter_already_liked_items=False)
    assert ids.tolist() == [1, 4, 3] and scores.tolist() == [3, 3, 2]


def test_batch_equals_single(model: Popularity, user_items: sp.csr_matrix) -> None:
    users = np.arange(4)
    ids, scores = model.recommend(users, user_items[users], N=2)
    assert ids.shape == scores.shape == (4, 2)
    for row, user in enumerate(users):
        one_ids, one_scores = model.recommend(user, user_items[user], N=2)
        np.testing.assert_array_equal(ids[row], one_ids)
        np.testing.assert_array_equal(scores[row], one_scores)


def test_short_rows_are_padded(model: Popularity, user_items: sp.csr_matrix) -> None:
    ids, scores = model.recommend([0, 3], user_items[[0, 3]], N=10)
    assert ids.shape == (2, 5)
    assert ids[0].tolist() == [3, 2, -1, -1, -1]
    assert np.isneginf(scores[0, 2:]).all()
    one_ids, _ = model.recommend(0, user_items[0], N=10)
    assert one_ids.tolist() == [3, 2]


def test_filter_items_and_items(model: Popularity, user_items: sp.csr_matrix) -> None:
    ids, _ = model.recommend(3, user_items[3], N=2, filter_items=[1])
    assert ids.tolist() == [3, 0]
    ids, _ = model.recommend(3, user_items[3], N=5, items=[0, 2, 4])
    assert ids.tolist() == [0, 2]
    with pytest.raises(ValueError, match="both items and filter_items"):
        model.recommend(3, user_items[3], items=[0], filter_items=[1])
    with pytest.raises(IndexError, match="items"):
        model.recommend(3, user_items[3], items=[9])


def test_recommend_errors(user_items: sp.csr_matrix) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        Popularity().recommend(0, user_items[0])
    model = Popularity().fit(user_items)
    with pytest.raises(ValueError, match="1 row for every user"):
        model.recommend([0, 1], user_items[0])
    with pytest.raises(ValueError, match="N must be"):
        model.recommend(0, user_items[0], N=-1)
    with pytest.raises(ValueError, match="CSR"):
        model.recommend(0, DENSE[0])
    assert model.recommend(0, user_items[0], N=0)[0].shape == (0,)
