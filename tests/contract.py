"""The recommender contract (``implicit``'s ``RecommenderBaseTestMixin``), for every model.

The data set has planted structure: users and items fall into clusters, and users mostly
interact with their own cluster's items, so a working personalized model must recommend
(and find similar) items from the right cluster.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lightgcn_sparse.recommender import FactorRecommender

CLUSTERS = 4
USERS_PER, ITEMS_PER = 15, 10


class Planted(NamedTuple):
    train: sp.csr_matrix  # (U, I)
    valid: sp.csr_matrix  # (U, I), disjoint from train
    user_cluster: np.ndarray  # (U,)
    item_cluster: np.ndarray  # (I,)


def planted_data(seed: int = 0, p_in: float = 0.5, p_out: float = 0.02) -> Planted:
    """Users interact with their own cluster's items with prob. p_in, others with p_out."""
    rng = np.random.default_rng(seed)
    user_cluster = np.repeat(np.arange(CLUSTERS), USERS_PER)
    item_cluster = np.repeat(np.arange(CLUSTERS), ITEMS_PER)
    same = user_cluster[:, None] == item_cluster[None, :]
    dense = rng.random(same.shape) < np.where(same, p_in, p_out)
    held = dense & (rng.random(same.shape) < 0.2)
    train = sp.csr_matrix((dense & ~held).astype(np.float32))
    valid = sp.csr_matrix(held.astype(np.float32))
    return Planted(train, valid, user_cluster, item_cluster)




def small_config(**changes):
    base = dict(
        embedding_dim=16,
        num_layers=2,
        learning_rate=0.05,
        batch_size=128,
        epochs=25,
        reg=1e-4,
        seed=7,
    )
    base.update(changes)
    return base


class RecommenderBaseTestMixin:
    """Tests every recommender must pass. Subclasses define :meth:`make_model` (unfitted)."""

    device = "cpu"
    #: share of top-5 recommendations from the user's own cluster (random: 0.25)
    min_planted_precision = 0.8

    #: whether the model ranks by user-specific factors (False: the same list for everyone)
    personalized = True

    def make_model(self) -> FactorRecommender:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, planted) -> FactorRecommender:
        return cls().make_model().fit(planted.train, show_progress=False)

    # -------------------------------------------------------------- recommend
    def test_recommend_batch_equals_single(self, fitted, planted):
        users = np.arange(planted.train.shape[0])
        ids, scores = fitted.recommend(users, N=5)
        assert ids.shape == scores.shape == (users.size, 5)
        for u in users:
            one_ids, one_scores = fitted.recommend(int(u), N=5)
            np.testing.assert_array_equal(ids[u], one_ids)
            np.testing.assert_allclose(scores[u], one_scores, rtol=1e-5, atol=1e-6)

    def test_recommend_with_user_items_matches_training_rows(self, fitted, planted):
        users = np.array([3, 17, 42])
        a = fitted.recommend(users, N=6)
        b = fitted.recommend(users, planted.train[users], N=6)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)

    def test_dtypes_and_shapes(self, fitted):
        ids, scores = fitted.recommend(0, N=4)
        assert ids.dtype == np.int32 and scores.dtype == np.float32
        assert ids.shape == scores.shape == (4,)
        ids, scores = fitted.recommend(np.array([0, 1, 2]), N=4)
        assert ids.dtype == np.int32 and scores.dtype == np.float32
        assert ids.shape == scores.shape == (3, 4)
        assert np.all(np.diff(scores, axis=1) <= 0), "scores must be sorted best first"

    def test_filter_already_liked_items(self, fitted, planted):
        users = np.arange(planted.train.shape[0])
        ids, _ = fitted.recommend(users, N=8)
        for u in users:
            liked = set(planted.train[u].indices)
            assert not liked & set(ids[u].tolist())
        # Without the filter the planted model ranks liked (own-cluster) items on top.
        ids, _ = fitted.recommend(users, N=8, filter_already_liked_items=False)
        overlap = [bool(set(planted.train[u].indices) & set(ids[u].tolist())) for u in users]
        assert np.mean(overlap) > (0.9 if self.personalized else 0.5)

    def test_filter_liked_uses_given_user_items(self, fitted, planted):
        # Only the given rows count as liked: a training item that is not in them may appear.
        user = 0
        top, _ = fitted.recommend(user, N=3, filter_already_liked_items=False)
        row = sp.csr_matrix(([1.0], ([0], [top[0]])), shape=(1, planted.train.shape[1]))
        ids, _ = fitted.recommend(user, row, N=3)
        assert top[0] not in ids and top[1] in ids

    def test_filter_items(self, fitted):
        ids, _ = fitted.recommend(5, N=5)
        banned = ids[:2]
        new_ids, _ = fitted.recommend(5, N=5, filter_items=banned)
        assert not set(banned.tolist()) & set(new_ids.tolist())
        np.testing.assert_array_equal(new_ids[:3], ids[2:])

    def test_items_restricts_candidates(self, fitted, planted):
        allowed = np.array([1, 4, 9, 22, 35])
        liked = set(planted.train[2].indices)
        ids, scores = fitted.recommend(2, N=5, items=allowed)
        assert set(ids.tolist()) <= set(allowed.tolist()) - liked
        assert ids.size == len(set(allowed.tolist()) - liked)  # 1-D: cut to what is available
        ids2, scores2 = fitted.recommend(np.array([2, 3]), N=5, items=allowed)
        np.testing.assert_array_equal(ids2[0][: ids.size], ids)
        assert np.all(ids2[0][ids.size :] == -1) and np.all(np.isneginf(scores2[0][ids.size :]))

    def test_planted_structure_is_recovered(self, fitted, planted):
        if not self.personalized:
            pytest.skip("the same list for everyone cannot follow clusters")
        ids, _ = fitted.recommend(np.arange(planted.train.shape[0]), N=5)
        right = planted.item_cluster[ids] == planted.user_cluster[:, None]
        assert right.mean() > self.min_planted_precision

    # -------------------------------------------------------------- fold-in
    def test_recalculate_user_folds_in_a_new_user(self, fitted, planted):
        before = [f.clone() for f in fitted.factors()]
        liked = np.flatnonzero(planted.item_cluster == 2)[:4]
        row = sp.csr_matrix(
            (np.ones(liked.size), (np.zeros(liked.size, dtype=int), liked)),
            shape=(1, planted.train.shape[1]),
        )
        fitted.recommend(0, row, N=5, recalculate_user=True)  # warm-up
        start = time.perf_counter()
        ids, scores = fitted.recommend(0, row, N=5, recalculate_user=True)
        elapsed = time.perf_counter() - start
        print(f"\nfold-in recommend for one new user: {elapsed * 1e3:.2f} ms")
        assert ids.dtype == np.int32 and scores.dtype == np.float32
        assert not set(liked.tolist()) & set(ids.tolist())
        if self.personalized:
            assert np.mean(planted.item_cluster[ids] == 2) >= 0.8
        same, _ = fitted.recommend_for_items(liked.tolist(), N=5)
        np.testing.assert_array_equal(same, ids)
        vec = fitted.recalculate_user(0, row)
        width = fitted.item_factors.shape[1]
        assert vec.shape == (width,) and vec.dtype == np.float32
        many = fitted.recalculate_user([0, 1], sp.vstack([row, row]).tocsr())
        assert many.shape == (2, width)
        np.testing.assert_allclose(many[0], vec, rtol=1e-6)
        # No gradient step was taken: the trained factors are unchanged.
        assert all(torch.equal(a, b) for a, b in zip(fitted.factors(), before))

    def test_recommend_for_items_is_fast(self, fitted):
        liked = [0, 1, 2]
        fitted.recommend_for_items(liked, N=10)
        start = time.perf_counter()
        for _ in range(10):
            fitted.recommend_for_items(liked, N=10)
        per_call = (time.perf_counter() - start) / 10
        print(f"\nrecommend_for_items: {per_call * 1e3:.2f} ms per call")

    # -------------------------------------------------------------- similarity
    def test_similar_items(self, fitted, planted):
        if not self.personalized:
            with pytest.raises(NotImplementedError, match="no item similarity"):
                fitted.similar_items(0)
            return
        for item in (0, 13, 27, 39):
            ids, scores = fitted.similar_items(item, N=5)
            assert ids[0] == item and scores[0] == pytest.approx(1.0, abs=1e-5)
            assert np.all(np.diff(scores) <= 1e-6)
            assert np.mean(planted.item_cluster[ids[1:]] == planted.item_cluster[item]) >= 0.75
        ids, scores = fitted.similar_items(np.array([0, 13]), N=5)
        assert ids.shape == (2, 5) and ids.dtype == np.int32 and scores.dtype == np.float32
        np.testing.assert_array_equal(ids[1], fitted.similar_items(13, N=5)[0])
        ids, _ = fitted.similar_items(0, N=5, filter_items=[0])
        assert 0 not in ids
        ids, _ = fitted.similar_items(0, N=3, items=[0, 5, 30])
        assert set(ids.tolist()) <= {0, 5, 30} and ids[0] == 0

    def test_similar_users(self, fitted, planted):
        if not self.personalized:
            with pytest.raises(NotImplementedError, match="no user similarity"):
                fitted.similar_users(0)
            return
        for user in (0, 20, 59):
            ids, scores = fitted.similar_users(user, N=5)
            assert ids[0] == user and scores[0] == pytest.approx(1.0, abs=1e-5)
            assert np.mean(planted.user_cluster[ids[1:]] == planted.user_cluster[user]) >= 0.75

    # -------------------------------------------------------------- persistence
    def test_save_load_round_trip(self, fitted, planted, tmp_path):
        path = fitted.save(tmp_path / "model.npz")
        loaded = type(fitted).load(path, device=self.device)
        users = np.arange(planted.train.shape[0])
        for a, b in zip(fitted.recommend(users, N=7), loaded.recommend(users, N=7)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(fitted.user_factors, loaded.user_factors)
        np.testing.assert_array_equal(fitted.item_factors, loaded.item_factors)
        assert loaded.best_epoch_ == fitted.best_epoch_
        assert [r["loss"] for r in loaded.history_] == [r["loss"] for r in fitted.history_]
        row = planted.train[[4]]
        np.testing.assert_array_equal(
            fitted.recommend(0, row, recalculate_user=True)[0],
            loaded.recommend(0, row, recalculate_user=True)[0],
        )

    def test_repr_names_the_shape(self, fitted):
        text = repr(fitted)
        assert f"{type(fitted).__name__}(" in text and "users=60" in text and "items=40" in text
