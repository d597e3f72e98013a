"""What a model knows of its catalogue: raw ids both ways, inputs it refuses, users and items
added after training (``partial_fit_users`` / ``partial_fit_items``, ``recalculate_item``)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from lightgcn_sparse import IdMap, LightGCN, Popularity, UnknownIdError
from lightgcn_sparse.progress import Progress


def shop_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = {(f"u{u}", f"sku-{i}") for u in range(40) for i in rng.choice(30, 6, replace=False)}
    return pd.DataFrame(sorted(rows), columns=["user", "item"])


@pytest.fixture(scope="module")
def fitted():
    return LightGCN(embedding_dim=8, num_layers=2, epochs=3, seed=1).fit(
        shop_frame(), show_progress=False
    )


def test_fit_from_raw_ids_maps_them_both_ways(fitted, tmp_path):
    assert fitted.user_ids[:3].tolist() == ["u0", "u1", "u10"]  # sorted raw ids
    user = fitted.user_index("u7")
    ids, _ = fitted.recommend(user, N=3)
    raw = fitted.item_ids[ids]
    assert all(r.startswith("sku-") for r in raw)
    assert fitted.item_index(raw[0]) == ids[0]
    with pytest.raises(UnknownIdError, match="unknown user id 'u999': not among the 40 users"):
        fitted.user_index("u999")
    loaded = LightGCN.load(fitted.save(tmp_path / "m.npz"))
    assert loaded.user_ids.tolist() == fitted.user_ids.tolist()
    assert loaded.item_index(raw[0]) == ids[0]


def test_integer_ids_stay_integers_and_a_matrix_fit_has_identity_ids(tmp_path):
    frame = shop_frame().assign(user=lambda f: f.user.str[1:].astype(int) + 100)
    frame["item"] = frame.item.str[4:].astype(int)
    model = LightGCN(embedding_dim=4, epochs=1).fit(frame, show_progress=False)
    loaded = LightGCN.load(model.save(tmp_path / "m.npz"))
    assert loaded.user_ids.dtype == np.int64 and loaded.user_index(107) == model.user_index("107")
    matrix = sp.random(10, 8, density=0.4, format="csr", random_state=0)
    plain = LightGCN(embedding_dim=4, epochs=1).fit(matrix, show_progress=False)
    assert plain.user_ids.tolist() == list(range(10)) and plain.user_index(3) == 3


def test_validation_as_a_frame_uses_the_training_ids():
    frame = shop_frame()
    held = frame.sample(frac=0.2, random_state=0)
    train = frame.drop(held.index)
    model = LightGCN(embedding_dim=4, epochs=2, patience=0).fit(train, held, show_progress=False)
    assert "ndcg@20" in model.history_[-1]
    with pytest.raises(ValueError, match="give both as DataFrames"):
        LightGCN(epochs=1).fit(sp.csr_matrix(np.eye(3)), held, show_progress=False)


def test_negative_entries_and_empty_fold_ins_are_refused(fitted):
    dislikes = sp.csr_matrix(np.array([[1.0, -1.0, 0.0], [0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="holds negative values .* would count them as likes"):
        LightGCN(epochs=1).fit(dislikes, show_progress=False)
    empty = sp.csr_matrix((1, fitted.num_items))
    with pytest.raises(ValueError, match="holds no items: a user folded in from no items"):
        fitted.recommend(0, empty, recalculate_user=True)
    two = sp.csr_matrix(([1.0], ([0], [3])), shape=(2, fitted.num_items))
    with pytest.raises(ValueError, match="user_items row 1 is empty"):
        fitted.recalculate_user([0, 1], two)


@pytest.mark.parametrize("make", [lambda: LightGCN(embedding_dim=8, epochs=2, seed=1),
                                  lambda: Popularity()])  # fmt: skip
def test_partial_fit_users_adds_and_refits_users(make, tmp_path):
    model = make().fit(shop_frame(), show_progress=False)
    users, items = model.num_users, model.num_items
    liked = sp.csr_matrix(([1.0, 1.0], ([0, 0], [2, 5])), shape=(1, items))
    expected = model.recommend_for_items([2, 5], N=4)
    model.partial_fit_users([users], liked)  # a new user
    assert model.num_users == users + 1 and len(model.user_ids) == users + 1
    for a, b in zip(model.recommend(users, N=4), expected):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not {2, 5} & set(model.recommend(users, N=10)[0].tolist())  # its items are known
    model.partial_fit_users([0], liked)  # an existing user, refitted from these items
    np.testing.assert_array_equal(model.recommend(0, N=4)[0], expected[0])
    loaded = type(model).load(model.save(tmp_path / "m.npz"))
    for a, b in zip(loaded.recommend(np.arange(users + 1), N=4),
                    model.recommend(np.arange(users + 1), N=4)):  # fmt: skip
        np.testing.assert_array_equal(a, b)


def test_partial_fit_items_and_recalculate_item(fitted, tmp_path):
    model = LightGCN.load(fitted.save(tmp_path / "copy.npz"))
    items = model.num_items
    fans = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 0], [0, 1, 2])), shape=(1, model.num_users))
    vec = model.recalculate_item(items, fans)
    assert vec.shape == (model.config.embedding_dim,) and vec.dtype == np.float32
    model.partial_fit_items([items], fans)
    assert model.num_items == items + 1 and model.item_factors.shape[0] == items + 1
    np.testing.assert_allclose(model.item_factors[items], vec, rtol=1e-6)
    ids, _ = model.similar_items(items, N=3)
    assert ids[0] == items
    # Its users now know it: it is filtered from their lists; another user may get it.
    assert items not in model.recommend(0, N=items)[0].tolist()
    with pytest.raises(ValueError, match="item_users has an item with no users"):
        model.recalculate_item(0, sp.csr_matrix((1, model.num_users)))
    # A users x items column (the transposed orientation) is named as such, rows are items.
    column = sp.csr_matrix(np.ones((model.num_users, 1)))
    with pytest.raises(ValueError, match=r"item_users must have 1 rows \(items: row j holds"):
        model.partial_fit_items([items + 1], column)


def test_id_map_types_and_messages():
    ints = IdMap(np.array([196, 3, 50]), "user", "ml-100k")
    assert ints.index("196") == 0 and ints.index(np.int32(50)) == 2
    assert ints.index([3, 196]).tolist() == [1, 0]
    with pytest.raises(UnknownIdError, match="unknown user id 99999: not among the 3 users of ml"):
        ints.index("99999")
    text = IdMap(["SKU-1", "sku-1"], "item")
    assert text.index("sku-1") == 1 and text.index("SKU-1") == 0
    with pytest.raises(UnknownIdError, match="unknown item id 'Sku-1'"):
        text.index("Sku-1")


def test_progress_reports_within_long_epochs_outside_a_terminal():
    log = io.StringIO()  # not a terminal
    bar = Progress(3, stream=log, interval=0.0)
    bar.step(1, 40, 396, torch.tensor(0.5 * 10), 10)
    bar.epoch_end(1, {"loss": 0.4}, 2.5)
    assert log.getvalue().splitlines() == [
        "epoch 1/3: batch 40/396 loss 0.5000",
        "epoch 1/3  loss 0.4000  2.50s",
    ]


@pytest.mark.parametrize(
    "ids,exc,match",
    [
        ([7, 7, 2], ValueError, "user ids must be distinct. Got 7 more than once"),
        ([1, "1"], ValueError, "user ids must be distinct. Got '1' more than once"),
        (np.array([2**64 - 1, 1], np.uint64), ValueError, "must fit in int64"),
        ([1.5, 2.0], ValueError, "must be integers or strings. Got the float 1.5"),
        ([np.nan, 1.0], ValueError, "Got the float nan"),
        ([1, 2**63], ValueError, "must fit in int64. Got 9223372036854775808"),
        ([1, 2**70], ValueError, "must fit in int64"),
    ],
)
def test_id_map_refuses_ids_that_cannot_name_one_user_each(ids, exc, match):
    with pytest.raises(exc, match=match):
        IdMap(ids, "user")


def test_repeated_raw_ids_are_refused_at_fit_and_every_lookup_names_one_user():
    matrix = sp.random(6, 5, density=0.4, format="csr", random_state=0)
    with pytest.raises(ValueError, match="user ids must be distinct. Got 7 more than once"):
        LightGCN(epochs=1).fit(matrix, user_ids=[7, 7, 2, 3, 4, 5], show_progress=False)
    frame = pd.DataFrame({"user": [1, "1", 2], "item": [10, 11, 10]})
    with pytest.raises(ValueError, match="user ids must be distinct"):
        LightGCN(epochs=1).fit(frame, show_progress=False)
    whole = IdMap(np.array([3.0, 1.0]), "item")  # a column pandas read as float
    assert whole.is_integer and whole.index(3) == 0
    lookup = IdMap([5, 6, 7], "user")
    assert lookup.index(pd.Series([7, 5])).tolist() == [2, 0]
    assert lookup.index(torch.tensor([6])).tolist() == [1] and lookup.index(torch.tensor(6)) == 1
    assert lookup.index(torch.nn.Parameter(torch.tensor(7.0), requires_grad=False)) == 2
    assert IdMap(torch.tensor([4, 9]), "user").index(9) == 1
    plain = LightGCN(embedding_dim=4, epochs=1).fit(matrix, show_progress=False)
    with pytest.raises(UnknownIdError, match="unknown user id 99: not among the 6 users"):
        plain.user_index(99)


def test_new_text_ids_never_repeat_an_existing_one():
    grown = IdMap(["a", "b", "user-3"], "user").extended(5)
    assert grown.ids.tolist() == ["a", "b", "user-3", "user-3-1", "user-4"]


def test_a_refused_partial_fit_changes_nothing(fitted, tmp_path):
    model = LightGCN.load(fitted.save(tmp_path / "copy.npz"))
    before = model.recommend(np.arange(model.num_users), N=5)
    row = sp.csr_matrix(([1.0], ([0], [3])), shape=(1, model.num_items))
    with pytest.raises(ValueError, match=r"userids must be indices >= 0 .* Got -1"):
        model.partial_fit_users([-1], row)
    col = sp.csr_matrix(([1.0], ([0], [3])), shape=(1, model.num_users))
    with pytest.raises(ValueError, match=r"itemids must be indices >= 0 .* Got -2"):
        model.partial_fit_items([-2], col)
    assert model.extra_users_ == {} and model.extra_items_ == {}
    after = model.recommend(np.arange(model.num_users), N=5)
    np.testing.assert_array_equal(before[0], after[0])
    LightGCN.load(model.save(tmp_path / "again.npz"))  # still a valid model file


def test_a_column_of_words_named_value_is_not_taken_for_ratings():
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [7, 8, 7, 9], "value": ["click"] * 4})
    assert LightGCN(embedding_dim=4, epochs=1).fit(frame, show_progress=False).num_items == 3


def test_frames_are_read_by_column_name_and_negative_ratings_refused():
    named = pd.DataFrame({"item": [10, 20, 20, 30], "uid": [5, 5, 6, 6]})
    model = LightGCN(embedding_dim=4, epochs=1).fit(named, show_progress=False)
    assert model.user_ids.tolist() == [5, 6] and model.item_ids.tolist() == [10, 20, 30]
    rated = pd.DataFrame({"user": [1, 1, 2], "item": [7, 8, 7], "rating": [5, -5, 4]})
    with pytest.raises(ValueError, match="negative values in its 'rating' column"):
        LightGCN(epochs=1).fit(rated, show_progress=False)
