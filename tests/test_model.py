"""LightGCN: the common recommender contract (tests/contract.py), fit, early stopping."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from contract import RecommenderBaseTestMixin, small_config

from lightgcn_sparse.config import PRESETS, preset
from lightgcn_sparse.model import LightGCN, NotFittedError
from lightgcn_sparse.progress import Progress


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
        assert {"ndcg@5", "recall@10", "lr"} <= set(record) and "time" not in record
    assert [t["epoch"] for t in model.timings_] == [r["epoch"] for r in model.history_]
    assert all(t["seconds"] > 0 for t in model.timings_)
    losses = [r["loss"] for r in model.history_]
    assert losses[-1] < losses[0]


def test_fit_without_validation_keeps_the_last_epoch(planted):
    model = LightGCN(**small_config(epochs=3)).fit(planted.train, show_progress=False)
    assert model.best_epoch_ == 3 and len(model.history_) == 3
    assert all("val_loss" not in r for r in model.history_)


def test_an_empty_validation_is_refused_not_turned_into_nan_metrics(planted):
    empty = sp.csr_matrix(planted.train.shape)
    with pytest.raises(ValueError, match="validation holds no interactions"):
        LightGCN(**small_config(epochs=3)).fit(planted.train, empty, show_progress=False)


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
    bar.step(1, 5, 10, torch.tensor(0.693 * 4), 4)
    bar.epoch_end(1, {"loss": 0.5}, 0.25)
    text = screen.getvalue()
    assert text.startswith("\repoch 1/2 [##########..........] 5/10 loss 0.6930")
    # The summary overwrites the whole bar (padded), then ends the line.
    summary = text.split("\r")[2]
    assert summary.startswith("epoch 1/2  loss 0.5000  0.25s") and summary.endswith("\n")
    assert len(summary.rstrip("\n")) >= len(text.split("\r")[1])


@pytest.mark.parametrize("order", ["degree", "rcm", "balanced"])
def test_a_node_order_is_invisible_outside(planted, tmp_path, order):
    """The same parameters give the same factors (up to float rounding), recommendations and
    saved arrays in raw ids whatever order the products run in; and a model trained in
    another order trains (the parameters stay in raw order)."""
    model = LightGCN(**small_config(epochs=3)).fit(planted.train, show_progress=False)
    reordered = LightGCN.load(model.save(tmp_path / "a.npz"))
    reordered.config = reordered.config.replace(node_order=order)
    reordered._build_graph(reordered.trained_interactions_)
    assert reordered.graph_.order is not None
    np.testing.assert_allclose(reordered.user_factors, model.user_factors, rtol=1e-5, atol=1e-6)
    users = np.arange(planted.train.shape[0])
    ids = model.recommend(users, N=5)[0]
    np.testing.assert_array_equal(reordered.recommend(users, N=5)[0], ids)
    a, b = np.load(tmp_path / "a.npz"), np.load(reordered.save(tmp_path / "b.npz"))
    for key in ("embedding", "user_ids", "item_ids", "train_indptr", "train_indices"):
        np.testing.assert_array_equal(a[key], b[key])
    trained = LightGCN(**small_config(epochs=3, node_order=order)).fit(planted.train,
                                                                      show_progress=False)
    assert trained.graph_.order is not None
    assert np.mean(trained.recommend(users, N=5)[0] == model.recommend(users, N=5)[0]) > 0.5


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cpu_steps_propagate_only_the_batch_rows_and_train_as_the_full_propagation(
    planted, monkeypatch, dtype
):
    """On CPU a step propagates only the batch's unique rows (what :func:`propagate_rows`
    computes); its losses and embeddings follow the full
    propagation's up to float rounding. (In bfloat16 the Horner backward rounds otherwise,
    and Adam turns a gradient's last bits into whole steps on rarely updated rows: the
    losses are compared there.)"""
    from lightgcn_sparse import model as model_module

    calls = []
    real = model_module.unique_rows_propagation
    monkeypatch.setattr(model_module, "unique_rows_propagation",
                        lambda *a, **k: calls.append(1) or real(*a, **k))  # fmt: skip
    cfg = small_config(epochs=3, propagation_dtype=dtype, batch_size=8)  # 3B <= N / 2
    rows = LightGCN(**cfg).fit(planted.train, show_progress=False)
    assert calls, "the CPU step did not take the batch-rows path"
    monkeypatch.setattr(LightGCN, "_batch_rows_only", lambda self: False)
    calls.clear()
    full = LightGCN(**cfg).fit(planted.train, show_progress=False)
    assert not calls
    tol = 1e-5 if dtype == "float32" else 1e-2
    np.testing.assert_allclose([r["loss"] for r in rows.history_],
                               [r["loss"] for r in full.history_], rtol=tol)  # fmt: skip
    if dtype == "float32":
        torch.testing.assert_close(rows.embedding_, full.embedding_, rtol=0, atol=tol)


@pytest.mark.parametrize("batch", [8, 64])  # the batch-rows path, the full propagation
def test_cpu_step_loss_equals_bpr_loss_of_autograd_gathers(planted, batch):
    """The CPU step's loss (bpr_loss_indexed over the propagated rows) has the value and the
    gradient of the CUDA step's (F.embedding gathers and bpr_loss; a weight mask selects
    that path), with and without the batch-rows propagation."""
    model = LightGCN(**small_config(epochs=1, batch_size=batch, reg=0.1))
    model.fit(planted.train, show_progress=False)
    assert model._batch_rows_only() is (batch == 8)
    gen = torch.Generator().manual_seed(3)
    u = torch.randint(0, model.trained_users_, (batch,), generator=gen)
    p, n = (torch.randint(0, model.trained_items_, (batch,), generator=gen) for _ in range(2))
    values, grads = [], []
    for weight in (None, torch.ones(batch)):
        model.embedding_.grad = None
        loss = model.loss(u, p, n, weight)
        loss.backward()
        values.append(float(loss.detach()))
        grads.append(model.embedding_.grad.clone())
    assert values[0] == pytest.approx(values[1], rel=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-8)


def test_lightgcnpp_and_large_batches_keep_the_full_propagation(planted):
    n = sum(planted.train.shape)  # 100 nodes: batches of up to 16 triples take the rows path
    assert 2 * 3 * 16 <= n < 2 * 3 * 17
    model = LightGCN(**small_config(epochs=1, batch_size=8, norm_left=0.6, norm_right=-0.1))
    model.fit(planted.train, show_progress=False)
    assert not model._batch_rows_only()
    for batch, rows_only in ((16, True), (17, False)):
        plain = LightGCN(**small_config(epochs=1, batch_size=batch))
        assert plain.fit(planted.train, show_progress=False)._batch_rows_only() is rows_only
