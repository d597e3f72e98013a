"""End-to-end on the real MovieLens 100K (the copy inside an installed recbole wheel)."""

import numpy as np
import pytest

from lightgcn_sparse.config import Config
from lightgcn_sparse.data import find_recbole_ml100k
from lightgcn_sparse.experiment import (
    DataSpec,
    check_same_catalogue,
    evaluate_test,
    popularity_metrics,
    train,
)
from lightgcn_sparse.reporting import metrics_table

needs_ml100k = pytest.mark.skipif(
    find_recbole_ml100k()[0] is None,
    reason="real ml-100k needs `pip install --no-deps recbole==1.2.1` (README's test command)",
)


@pytest.fixture(scope="module")
def trained():
    spec = DataSpec("ml-100k", split="random", split_seed=2020)
    cfg = Config(learning_rate=1e-2, epochs=8, patience=0, seed=7)
    model, data, split = train(spec, cfg, show_progress=False)
    return model, data, split


@needs_ml100k
def test_lightgcn_beats_popularity_by_a_clear_margin(trained):
    model, data, split = trained
    assert (data.num_users, data.num_items, data.num_interactions) == (943, 1682, 100000)
    ours = evaluate_test(model, split, (10, 20))
    pop = popularity_metrics(split, (10, 20))
    table = metrics_table({"LightGCN": ours, "Popularity": pop})
    print(table)
    assert ours["users"] == pop["users"] == 943
    for key in ("recall@20", "ndcg@20", "precision@10", "map@10"):
        assert ours[key] > 1.25 * pop[key], (key, ours[key], pop[key])


@needs_ml100k
def test_test_items_are_never_training_items_and_ranking_excludes_them(trained):
    model, data, split = trained
    train_pairs = set(zip(split.train.users.tolist(), split.train.items.tolist()))
    test_pairs = set(zip(split.test.users.tolist(), split.test.items.tolist()))
    assert not train_pairs & test_pairs
    ids, _ = model.recommend(np.arange(20), N=50)
    for u in range(20):
        assert not set(ids[u].tolist()) & {i for (v, i) in train_pairs if v == u}


@needs_ml100k
def test_model_records_its_data_and_refuses_other_data(trained, tmp_path):
    model, data, split = trained
    assert model.config.extra["data"]["dataset"] == "ml-100k"
    smaller = data.subset(data.users < 500)
    from lightgcn_sparse.data import Interactions

    other = Interactions(
        smaller.users, smaller.items, 500, data.num_items, data.user_ids[:500], data.item_ids
    )
    with pytest.raises(ValueError, match="trained on another dataset"):
        check_same_catalogue(model, other, tmp_path / "m.npz")
