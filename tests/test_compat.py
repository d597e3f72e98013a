"""Files written by lightgcn-sparse 0.1.0 still load and resume.

``tests/data/v0.1/`` holds a saved model, a training checkpoint (after epoch 2 of 2) and
their training matrix, written by version 0.1.0 (commit 87912c1): ids stored as text, no
``kind`` or list of fields, epoch times inside the history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lightgcn_sparse import LightGCN

OLD = Path(__file__).parent / "data" / "v0.1"
SETTINGS = dict(embedding_dim=4, batch_size=16, seed=1, ks=(5,), metric="ndcg@5")


def test_a_saved_model_of_version_0_1_loads_with_typed_ids():
    model = LightGCN.load(OLD / "model.npz")
    assert (model.num_users, model.num_items) == (20, 25)
    assert model.user_ids[:2].tolist() == ["u0", "u1"]
    assert model.item_ids.dtype == np.int64 and model.item_index(103) == 3  # were text
    assert all("time" not in r for r in model.history_) and len(model.timings_) == 2
    ids, scores = model.recommend(model.user_index("u3"), N=3)
    assert ids.dtype == np.int32 and np.all(np.diff(scores) <= 0)


def test_a_checkpoint_of_version_0_1_loads_and_resumes():
    train = sp.load_npz(OLD / "train.npz").tocsr()
    assert LightGCN.load(OLD / "ckpt.npz").num_items == 25
    model = LightGCN(**SETTINGS, epochs=4).fit(train, train, show_progress=False,
                                               resume=OLD / "ckpt.npz")  # fmt: skip
    assert [r["epoch"] for r in model.history_] == [1, 2, 3, 4]
    assert np.isfinite(model.history_[-1]["loss"])
