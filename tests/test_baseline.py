"""The Popularity baseline: the common recommender contract, and its own ranking rules."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from contract import RecommenderBaseTestMixin

from lightgcn_sparse.baseline import Popularity
from lightgcn_sparse.checkpoint import CheckpointError
from lightgcn_sparse.model import LightGCN

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


class TestPopularity(RecommenderBaseTestMixin):
    personalized = False

    def make_model(self) -> Popularity:
        return Popularity(device=self.device)


@pytest.fixture
def user_items() -> sp.csr_matrix:
    return sp.csr_matrix(DENSE)


@pytest.fixture
def model(user_items: sp.csr_matrix) -> Popularity:
    return Popularity().fit(user_items)


def test_counts_distinct_users() -> None:
    rows = np.array([0, 0, 1, 2, 2])
    cols = np.array([1, 1, 1, 0, 2])
    data = np.array([1.0, 4.0, 2.0, 0.0, 1.0])  # a repeated pair and an explicit zero
    scores = Popularity().fit(sp.coo_matrix((data, (rows, cols)), shape=(3, 4))).item_scores_
    assert scores.dtype == np.float32
    assert scores.tolist() == [0, 2, 1, 0]


def test_recommend_one_user(model: Popularity, user_items: sp.csr_matrix) -> None:
    ids, scores = model.recommend(2, user_items[2], N=3)
    assert ids.dtype == np.int32 and scores.dtype == np.float32
    assert ids.tolist() == [4, 0, 2]  # 1 and 3 are already liked; ties by lower id
    assert scores.tolist() == [3, 1, 0]  # the popularity counts


def test_ties_break_by_lower_item_id(model: Popularity) -> None:
    ids, scores = model.recommend(2, None, N=5, filter_already_liked_items=False)
    assert ids.tolist() == [1, 4, 3, 0, 2] and scores.tolist() == [3, 3, 2, 1, 0]


def test_short_rows_are_padded(model: Popularity, user_items: sp.csr_matrix) -> None:
    ids, scores = model.recommend([0, 3], user_items[[0, 3]], N=5)
    assert ids.shape == (2, 5)
    assert ids[0].tolist() == [3, 2, -1, -1, -1]
    assert np.isneginf(scores[0, 2:]).all()
    one_ids, _ = model.recommend(0, user_items[0], N=5)
    assert one_ids.tolist() == [3, 2]


def test_filter_items_and_items(model: Popularity, user_items: sp.csr_matrix) -> None:
    ids, _ = model.recommend(3, user_items[3], N=2, filter_items=[1])
    assert ids.tolist() == [3, 0]
    ids, _ = model.recommend(3, user_items[3], N=5, items=[0, 2, 4])
    assert ids.tolist() == [0, 2]
    with pytest.raises(ValueError, match=r"items must lie in \[0, 5\)"):
        model.recommend(3, user_items[3], N=2, items=[9])


def test_recommend_errors(user_items: sp.csr_matrix) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        Popularity().recommend(0, user_items[0])
    model = Popularity().fit(user_items)
    with pytest.raises(ValueError, match="user_items must have 2 rows"):
        model.recommend([0, 1], user_items[0], N=2)
    with pytest.raises(ValueError, match=r"N must be an int in \[1, 5\]"):
        model.recommend(0, user_items[0], N=0)
    with pytest.raises(TypeError, match="scipy.sparse"):
        model.recommend(0, DENSE[0], N=2)


def test_files_of_one_model_are_refused_by_another(model: Popularity, tmp_path) -> None:
    path = model.save(tmp_path / "pop.npz")
    with pytest.raises(CheckpointError, match="holds a popularity model, not a lightgcn one"):
        LightGCN.load(path)
