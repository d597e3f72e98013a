"""The recommender contract (``implicit``'s ``RecommenderBaseTestMixin``) and LightGCN's fit.

The data set has planted structure: users and items fall into clusters, and users mostly
interact with their own cluster's items, so a working model must recommend (and find
similar) items from the right cluster.
"""

from __future__ import annotations

import io
import time
from typing import NamedTuple

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lightgcn_sparse.config import PRESETS, preset
from lightgcn_sparse.model import LightGCN, NotFittedError
from lightgcn_sparse.progress import Progress

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


@pytest.fixture(scope="module")
def planted() -> Planted:
    return planted_data()


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

    def make_model(self) -> LightGCN:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, planted) -> LightGCN:
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
        assert np.mean(overlap) > 0.9

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
        ids, _ = fitted.recommend(np.arange(planted.train.shape[0]), N=5)
        right = planted.item_cluster[ids] == planted.user_cluster[:, None]
        assert right.mean() > self.min_planted_precision

    # -------------------------------------------------------------- fold-in
    def test_recalculate_user_folds_in_a_new_user(self, fitted, planted):
        before = fitted.embedding_.detach().clone()
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
        assert np.mean(planted.item_cluster[ids] == 2) >= 0.8
        same, _ = fitted.recommend_for_items(liked.tolist(), N=5)
        np.testing.assert_array_equal(same, ids)
        vec = fitted.recalculate_user(0, row)
        assert vec.shape == (fitted.config.embedding_dim,) and vec.dtype == np.float32
        many = fitted.recalculate_user([0, 1], sp.vstack([row, row]).tocsr())
        assert many.shape == (2, fitted.config.embedding_dim)
        np.testing.assert_allclose(many[0], vec, rtol=1e-6)
        # No gradient step was taken: the trained embeddings are unchanged.
        assert torch.equal(fitted.embedding_.detach(), before)
        assert fitted.embedding_.grad is None

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
        for user in (0, 20, 59):
            ids, scores = fitted.similar_users(user, N=5)
            assert ids[0] == user and scores[0] == pytest.approx(1.0, abs=1e-5)
            assert np.mean(planted.user_cluster[ids[1:]] == planted.user_cluster[user]) >= 0.75

    # -------------------------------------------------------------- persistence
    def test_save_load_round_trip(self, fitted, planted, tmp_path):
        path = fitted.save(tmp_path / "model.npz")
        loaded = LightGCN.load(path, device=self.device)
        users = np.arange(planted.train.shape[0])
        for a, b in zip(fitted.recommend(users, N=7), loaded.recommend(users, N=7)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(fitted.user_factors, loaded.user_factors)
        np.testing.assert_array_equal(fitted.similar_items(3)[0], loaded.similar_items(3)[0])
        assert loaded.config.to_dict() == fitted.config.to_dict()
        assert loaded.best_epoch_ == fitted.best_epoch_
        assert [r["loss"] for r in loaded.history_] == [r["loss"] for r in fitted.history_]
        row = planted.train[[4]]
        np.testing.assert_array_equal(
            fitted.recommend(0, row, recalculate_user=True)[0],
            loaded.recommend(0, row, recalculate_user=True)[0],
        )

    def test_repr_names_the_shape(self, fitted):
        text = repr(fitted)
        assert "LightGCN(" in text and "users=60" in text and "items=40" in text


class TestLightGCN(RecommenderBaseTestMixin):
    def make_model(self) -> LightGCN:
        return LightGCN(**small_config(), device=self.device)


class TestMatrixFactorization(RecommenderBaseTestMixin):
    """num_layers=0 is LightGCN without propagation: plain BPR matrix factorization."""

    min_planted_precision = 0.5  # no smoothing over the graph: weaker, still far from random

    def make_model(self) -> LightGCN:
        return LightGCN(**small_config(num_layers=0, epochs=40), device=self.device)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
class TestLightGCNCuda(RecommenderBaseTestMixin):
    device = "cuda"

    def make_model(self) -> LightGCN:
        return LightGCN(**small_config(), device=self.device)


# ------------------------------------------------------------------ before fit


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.recommend(0),
        lambda m: m.recommend_for_items([1]),
        lambda m: m.recalculate_user(0, sp.csr_matrix((1, 3))),
        lambda m: m.similar_items(0),
        lambda m: m.similar_users(0),
        lambda m: m.evaluate(sp.csr_matrix((1, 3))),
        lambda m: m.save("never-written.npz"),
        lambda m: m.user_factors,
        lambda m: m.item_factors,
        lambda m: m.num_items,
    ],
    ids=[
        "recommend",
        "recommend_for_items",
        "recalculate_user",
        "similar_items",
        "similar_users",
        "evaluate",
        "save",
        "user_factors",
        "item_factors",
        "num_items",
    ],
)
def test_use_before_fit_raises_not_fitted(call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(\) or load\(\) first"):
        call(LightGCN())
    assert not (tmp_path / "never-written.npz").exists()


# ------------------------------------------------------------------ fit


@pytest.fixture(scope="module")
def early_stopped(planted):
    """A fit with validation that stops early, and a snapshot of each epoch's embeddings."""
    snapshots = {}
    model = LightGCN(**small_config(epochs=60, patience=3, learning_rate=0.1, metric="ndcg@5"))

    def grab(record):
        snapshots[record["epoch"]] = model.embedding_.detach().clone()

    model.fit(planted.train, planted.valid, show_progress=False, callback=grab)
    return model, snapshots


def test_early_stopping_restores_the_best_epoch(early_stopped):
    model, snapshots = early_stopped
    history = model.history_
    last = history[-1]["epoch"]
    assert last < 60, "patience 3 should stop well before 60 epochs"
    scores = [r["ndcg@5"] for r in history]
    best = int(np.argmax(scores)) + 1  # first epoch reaching the maximum
    assert model.best_epoch_ == best
    assert last == best + 3, "stops after `patience` validations without improvement"
    assert torch.equal(model.embedding_.detach(), snapshots[best])
    assert not torch.equal(model.embedding_.detach(), snapshots[last])
    assert [r["epoch"] for r in history if r["improved"]][-1] == best


def test_history_has_loss_and_val_loss_per_epoch(early_stopped):
    model, _ = early_stopped
    assert [r["epoch"] for r in model.history_] == list(range(1, len(model.history_) + 1))
    for record in model.history_:
        assert np.isfinite(record["loss"]) and np.isfinite(record["val_loss"])
        assert {"ndcg@5", "recall@10", "time", "lr"} <= set(record)
    losses = [r["loss"] for r in model.history_]
    assert losses[-1] < losses[0]


def test_fit_without_validation_keeps_the_last_epoch(planted):
    model = LightGCN(**small_config(epochs=3)).fit(planted.train, show_progress=False)
    assert model.best_epoch_ == 3 and len(model.history_) == 3
    assert all("val_loss" not in r for r in model.history_)


def test_fit_accepts_index_pairs(planted):
    coo = planted.train.tocoo()
    a = LightGCN(**small_config(epochs=2)).fit(planted.train, show_progress=False)
    b = LightGCN(**small_config(epochs=2)).fit(
        (coo.row, coo.col, *planted.train.shape), show_progress=False
    )
    assert torch.equal(a.embedding_, b.embedding_)


def test_cs224w_preset_is_expressible(planted):
    cfg = preset("cs224w")
    assert cfg == PRESETS["cs224w"]
    expected = dict(
        embedding_dim=32,
        num_layers=3,
        learning_rate=1e-3,
        lr_decay=0.9,
        reg=1e-6,
        batch_size=256,
        epochs=50,
        batches_per_epoch=200,
        sampling="users",
        metric="recall@20",
    )
    assert {k: getattr(cfg, k) for k in expected} == expected
    model = LightGCN(preset("cs224w", epochs=3, batches_per_epoch=4))
    model.fit(planted.train, planted.valid, show_progress=False)
    assert len(model.history_) == 3 and "recall@20" in model.history_[0]
    lrs = [r["lr"] for r in model.history_]
    np.testing.assert_allclose(lrs, [1e-3 * 0.9**e for e in (1, 2, 3)], rtol=1e-12)
    assert model.config.alpha is None and "alpha=[0.25, 0.25, 0.25, 0.25]" in repr(model)


# ------------------------------------------------------------------ progress


def test_fit_prints_one_progress_line_per_epoch(planted, capsys):
    LightGCN(**small_config(epochs=3)).fit(planted.train, planted.valid, show_progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", f"{e}/3"] for e in (1, 2, 3)]
    assert all("loss" in line and "val_loss" in line and "ndcg@20" in line for line in lines)
    LightGCN(**small_config(epochs=2)).fit(planted.train, show_progress=False)
    assert capsys.readouterr().err == ""


def test_progress_redraws_in_place_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    bar = Progress(2, stream=screen)
    bar._last_draw = -1.0
    bar.step(1, 5, 10, 0.693)
    bar.epoch_end(1, {"loss": 0.5, "time": 0.25})
    text = screen.getvalue()
    assert text.startswith("\repoch 1/2 [##########..........] 5/10 loss 0.6930")
    # The summary overwrites the whole bar (padded), then ends the line.
    summary = text.split("\r")[2]
    assert summary.startswith("epoch 1/2  loss 0.5000  0.25s") and summary.endswith("\n")
    assert len(summary.rstrip("\n")) >= len(text.split("\r")[1])
