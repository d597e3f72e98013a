"""Adversarial inputs at every public entry point, through the Python API and the CLI.

Each bad input must fail with a clear error that names the argument or file and the
problem, raised by lightgcn_sparse itself (never a raw error from inside torch, numpy or
pandas); the CLI must exit with code 1 or 2, print one ``Error:`` line and no traceback;
and nothing already on disk may change. Checkpoint files are covered in
``test_checkpoint.py``, resuming and divergence in ``test_resume.py``.
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner
from hypothesis import given, note, settings
from hypothesis import strategies as st
from strategies import bipartite_graphs

import lightgcn_sparse
from lightgcn_sparse.cli import main
from lightgcn_sparse.model import LightGCN

PKG = Path(lightgcn_sparse.__file__).resolve().parent
U, I = 12, 10  # the tiny model's users and items  # noqa: E741


def assert_clean(excinfo, *words: str) -> None:
    """The error names ``words`` and was raised by lightgcn_sparse, not by a dependency."""
    message = str(excinfo.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    origin = Path(str(excinfo.traceback[-1].path)).resolve()
    assert PKG in origin.parents, f"{type(excinfo.value).__name__} raised in {origin}: {message}"


def tiny_matrix(full_user: bool = False) -> sp.csr_matrix:
    """12 x 10 interactions; user 10 and item 9 have none (user 11 has all, if asked)."""
    rng = np.random.default_rng(1)
    dense = rng.random((U, I)) < 0.35
    dense[:, 9] = False
    dense[10] = False
    if full_user:
        dense[11] = True
    return sp.csr_matrix(dense.astype(np.float32))


def tiny_config(**changes) -> dict:
    base = dict(embedding_dim=4, num_layers=2, epochs=2, batch_size=8, ks=(5,), metric="ndcg@5")
    base.update(changes)
    return base


@functools.cache
def tiny_model() -> LightGCN:
    return LightGCN(**tiny_config()).fit(tiny_matrix(), show_progress=False)


# ------------------------------------------------------------------ ids (hypothesis)

ID_VALUES = st.one_of(
    st.integers(-3, 15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([None, "3", True, 2.0, math.nan, np.int64(3), np.int32(-1), np.float32(1)]),
    st.lists(st.integers(-3, 15), max_size=4),
    st.lists(st.floats(allow_nan=True), min_size=1, max_size=3),
)
SIZES = st.one_of(st.integers(-2, 13), st.floats(allow_nan=True), st.sampled_from([None, "5"]))


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def valid_ids(value, size: int) -> bool:
    if isinstance(value, list):
        return all(is_int(v) and 0 <= v < size for v in value)
    return is_int(value) and 0 <= value < size


@given(userid=ID_VALUES, n=SIZES)
def test_recommend_ids_and_n(userid, n):
    model = tiny_model()
    n_ok = is_int(n) and 1 <= n <= I
    if n_ok and valid_ids(userid, U):
        ids, scores = model.recommend(userid, N=n)
        assert ids.dtype == np.int32 and scores.dtype == np.float32
        assert ids.ndim == (2 if isinstance(userid, list) else 1)
        return
    with pytest.raises((ValueError, TypeError)) as excinfo:
        model.recommend(userid, N=n)
    assert_clean(excinfo, "N" if not n_ok else "userid")


@given(itemid=ID_VALUES, n=SIZES)
def test_similar_items_ids_and_n(itemid, n):
    model = tiny_model()
    if valid_ids(itemid, I) and is_int(n) and 1 <= n <= I:
        ids, _ = model.similar_items(itemid, N=n)
        assert ids.ndim == (2 if isinstance(itemid, list) else 1)
        return
    with pytest.raises((ValueError, TypeError)) as excinfo:
        model.similar_items(itemid, N=n)
    assert_clean(excinfo, "itemid" if not valid_ids(itemid, I) else "N")


@given(userid=ID_VALUES)
def test_similar_users_ids(userid):
    model = tiny_model()
    if valid_ids(userid, U):
        model.similar_users(userid, N=3)
        return
    with pytest.raises((ValueError, TypeError)) as excinfo:
        model.similar_users(userid, N=3)
    assert_clean(excinfo, "userid")


@given(liked=ID_VALUES)
def test_recommend_for_items_ids(liked):
    model = tiny_model()
    if valid_ids(liked, I) and not (isinstance(liked, list) and not liked):
        ids, _ = model.recommend_for_items(liked, N=3)
        assert not set(np.atleast_1d(liked).tolist()) & set(ids.tolist())
        return
    with pytest.raises((ValueError, TypeError)) as excinfo:
        model.recommend_for_items(liked, N=3)
    assert_clean(excinfo, "liked_items")


@given(filter_items=st.one_of(st.none(), ID_VALUES), items=st.one_of(st.none(), ID_VALUES))
def test_recommend_filter_items_and_items(filter_items, items):
    model = tiny_model()
    items_ok = items is None or valid_ids(items, I)
    if items_ok and (filter_items is None or valid_ids(filter_items, I)):
        ids, _ = model.recommend(0, N=3, filter_items=filter_items, items=items)
        if filter_items is not None:
            assert not set(np.atleast_1d(filter_items).tolist()) & set(ids.tolist())
        if items is not None:
            assert set(ids.tolist()) <= set(np.atleast_1d(items).tolist())
        return
    with pytest.raises((ValueError, TypeError)) as excinfo:
        model.recommend(0, N=3, filter_items=filter_items, items=items)
    assert_clean(excinfo, "items" if not items_ok else "filter_items")


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: m.recommend([0, 1], sp.csr_matrix((3, I))), ["user_items", "2 rows"]),
        (lambda m: m.recommend(0, sp.csr_matrix(np.ones((1, 15)))), ["user_items", "10 col"]),
        (lambda m: m.recommend(0, sp.csr_matrix((1, 7))), ["user_items", "10 columns"]),
        (
            lambda m: m.recommend(0, sp.csr_matrix((1, 7)), recalculate_user=True),
            ["user_items", "10 columns"],
        ),
        (lambda m: m.recommend(0, recalculate_user=True), ["recalculate_user", "user_items"]),
        (lambda m: m.recommend(0, np.ones((1, I))), ["user_items", "scipy.sparse"]),
        (
            lambda m: m.recommend(0, sp.csr_matrix(np.full((1, I), np.nan))),
            ["user_items", "NaN"],
        ),
        (lambda m: m.recalculate_user(0, sp.csr_matrix((2, I))), ["user_items", "1 rows"]),
        (lambda m: m.evaluate(sp.csr_matrix((U, 15))), ["test", "10 columns"]),
        (lambda m: m.evaluate(sp.csr_matrix((3, I))), ["test", "12 rows"]),
        (lambda m: m.evaluate(tiny_matrix(), exclude=sp.csr_matrix((U, 4))), ["exclude"]),
        (lambda m: m.evaluate(tiny_matrix(), ks=[0]), ["ks", "Got 0"]),
        (lambda m: m.evaluate(tiny_matrix(), ks=[11]), ["ks", "Got 11"]),
        (lambda m: m.recommend(0, N=11), ["N must be an int in [1, 10]", "Got 11"]),
        (lambda m: m.similar_items(0, N=0), ["N must be an int in [1, 10]", "Got 0"]),
    ],
)
def test_inference_rejects_bad_arguments(call, words):
    with pytest.raises((ValueError, TypeError)) as excinfo:
        call(tiny_model())
    assert_clean(excinfo, *words)


# ------------------------------------------------------------------ training data


@settings(max_examples=40)
@given(graph=bipartite_graphs(max_users=7, max_items=7, max_edges=25))
def test_fit_on_any_small_graph(graph):
    matrix = sp.csr_matrix(
        (np.ones(len(graph.users)), (graph.users, graph.items)),
        shape=(graph.num_users, graph.num_items),
    )
    degree = np.diff(matrix.indptr)
    trainable = bool(np.any((degree > 0) & (degree < graph.num_items)))
    note(f"degrees {degree.tolist()}, trainable={trainable}")
    model = LightGCN(**tiny_config(ks=(1,), metric="recall@1"))
    if not graph.pairs():
        with pytest.raises(ValueError) as excinfo:
            model.fit(matrix, show_progress=False)
        assert_clean(excinfo, "user_items has no interactions")
        return
    if not trainable:
        with pytest.raises(ValueError) as excinfo, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(matrix, show_progress=False)
        assert_clean(excinfo, "no user has both an interaction and a non-interacted item")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(matrix, show_progress=False)
    assert torch.isfinite(model.embedding_).all()
    ids, scores = model.recommend(np.arange(graph.num_users), N=graph.num_items)
    for user in range(graph.num_users):
        liked = set(matrix[user].indices.tolist())
        shown = ids[user][ids[user] >= 0]
        assert not liked & set(shown.tolist())
        assert shown.size == graph.num_items - len(liked)
        assert np.isfinite(scores[user][: shown.size]).all()


def test_duplicate_interactions_count_once():
    clean = tiny_matrix()
    coo = clean.tocoo()
    doubled = sp.coo_matrix(
        (np.r_[coo.data, coo.data * 3], (np.r_[coo.row, coo.row], np.r_[coo.col, coo.col])),
        shape=clean.shape,
    )
    a = LightGCN(**tiny_config()).fit(clean, show_progress=False)
    b = LightGCN(**tiny_config()).fit(doubled, show_progress=False)
    c = LightGCN(**tiny_config()).fit(
        (np.r_[coo.row, coo.row], np.r_[coo.col, coo.col], U, I), show_progress=False
    )
    assert torch.equal(a.embedding_, b.embedding_) and torch.equal(a.embedding_, c.embedding_)


def test_users_and_items_without_interactions():
    model = tiny_model()
    ids, scores = model.recommend(10, N=5)  # user 10 has no interactions
    assert ids.shape == (5,) and np.isfinite(scores).all()
    ids, _ = model.similar_items(9, N=3)  # item 9 has no interactions
    assert ids[0] == 9


def test_user_with_every_item_is_warned_about_and_gets_nothing():
    with pytest.warns(UserWarning, match="1 user\\(s\\) interacted with every item"):
        model = LightGCN(**tiny_config()).fit(tiny_matrix(full_user=True), show_progress=False)
    ids, scores = model.recommend(11, N=5)
    assert ids.size == 0 and scores.size == 0
    ids, scores = model.recommend([10, 11], N=5)
    assert np.all(ids[1] == -1) and np.all(np.isneginf(scores[1]))
    ids, _ = model.recommend(11, N=5, filter_already_liked_items=False)
    assert ids.size == 5


@pytest.mark.parametrize(
    "data, words",
    [
        (sp.csr_matrix((U, I)), ["user_items has no interactions"]),
        (sp.csr_matrix((0, 0)), ["user_items has no interactions"]),
        (np.ones((3, 3)), ["user_items", "scipy.sparse"]),
        ([[0, 1]], ["user_items", "scipy.sparse"]),
        (sp.csr_matrix(np.array([[1.0, np.nan], [0, 1]])), ["user_items", "NaN"]),
        (sp.csr_matrix(np.array([[1.0, np.inf], [0, 1]])), ["user_items", "infinite"]),
        ((np.array([0.0, 1.5]), np.array([1, 2])), ["users", "integer ids", "float64"]),
        ((np.array([0, 1]), np.array([1, np.nan])), ["items", "integer ids"]),
        ((np.array([0, -1]), np.array([1, 2])), ["users must lie in", "-1"]),
        ((np.array([0, 1]), np.array([1, 2]), 2, 2), ["items must lie in [0, 2)", "2"]),
        ((np.array([0, 1]), np.array([1, 2]), -1, 5), ["num_users", "-1"]),
        ((np.array([0, 1, 2]), np.array([1, 2])), ["same length", "3 and 2"]),
        ((np.array([], dtype=int), np.array([], dtype=int)), ["no interactions"]),
        ((np.array([0]),), ["tuple", "length 1"]),
    ],
    ids=lambda v: type(v).__name__,
)
def test_fit_rejects_bad_training_data(data, words):
    with pytest.raises((ValueError, TypeError)) as excinfo:
        LightGCN(**tiny_config()).fit(data, show_progress=False)
    assert_clean(excinfo, *words)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(validation=sp.csr_matrix((3, I))), ["validation", "12 rows"]),
        (dict(validation=sp.csr_matrix((U, 4))), ["validation", "10 columns"]),
        (dict(validation=sp.csr_matrix(np.full((U, I), np.nan))), ["validation", "NaN"]),
        (dict(checkpoint_every=2), ["checkpoint_every needs checkpoint_path"]),
        (dict(checkpoint_every=-1, checkpoint_path="x.npz"), ["checkpoint_every", "-1"]),
        (dict(checkpoint_path=".", checkpoint_every=1), ["checkpoint_path", "directory"]),
        (dict(callback=3), ["callback must be callable"]),
        (dict(resume="no-such-checkpoint.npz"), ["no-such-checkpoint.npz", "does not exist"]),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, dict) else None,
)
def test_fit_rejects_bad_arguments(kwargs, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises((ValueError, TypeError, FileNotFoundError)) as excinfo:
        LightGCN(**tiny_config()).fit(tiny_matrix(), show_progress=False, **kwargs)
    assert_clean(excinfo, *words)
    assert list(tmp_path.iterdir()) == []


def test_validation_cutoffs_larger_than_the_catalogue_fail_before_training():
    seen = []
    with pytest.raises(ValueError) as excinfo:
        LightGCN(**tiny_config(ks=(20,), metric="ndcg@20")).fit(
            tiny_matrix(), tiny_matrix(), show_progress=False, callback=seen.append
        )
    assert_clean(excinfo, "ks=(20,)", "catalogue of 10 items")
    assert seen == []


# ------------------------------------------------------------------ hyperparameters


@settings(max_examples=30)
@given(embedding_dim=st.integers(-2, 3), num_layers=st.integers(-2, 3))
def test_embedding_dim_and_num_layers(embedding_dim, num_layers):
    model = LightGCN(**tiny_config(embedding_dim=embedding_dim, num_layers=num_layers, epochs=1))
    if embedding_dim >= 1 and num_layers >= 0:  # num_layers=0 is matrix factorization
        model.fit(tiny_matrix(), show_progress=False)
        assert model.user_factors.shape == (U, embedding_dim)
        assert len(model.config.alpha or [1.0] * (num_layers + 1)) == num_layers + 1
        return
    name = "embedding_dim" if embedding_dim < 1 else "num_layers"
    with pytest.raises(ValueError) as excinfo:
        model.fit(tiny_matrix(), show_progress=False)
    assert_clean(excinfo, f"{name} must be an int in [", "Got")


def test_num_layers_zero_is_matrix_factorization():
    model = LightGCN(**tiny_config(num_layers=0)).fit(tiny_matrix(), show_progress=False)
    final = np.vstack([model.user_factors, model.item_factors])
    np.testing.assert_array_equal(final, model.embedding_.detach().numpy())


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(alpha=(0.5, 0.5)), ["alpha must have num_layers + 1 = 3 entries", "Got 2"]),
        (dict(alpha=(0.5, -0.1, 0.6)), ["alpha[1]", "-0.1"]),
        (dict(alpha=(0.5, math.nan, 0.6)), ["alpha[1]", "nan"]),
        (dict(alpha=0.5), ["alpha must be a sequence", "0.5"]),
        (dict(learning_rate=0.0), ["learning_rate", "(0.0, inf]", "Got 0.0"]),
        (dict(learning_rate=math.nan), ["learning_rate", "Got nan"]),
        (dict(learning_rate=-1e-3), ["learning_rate", "Got -0.001"]),
        (dict(learning_rate=math.inf), ["learning_rate", "Got inf"]),
        (dict(learning_rate="fast"), ["learning_rate must be a real number", "'fast'"]),
        (dict(lr_decay=0.0), ["lr_decay", "Got 0.0"]),
        (dict(lr_decay=1.5), ["lr_decay", "Got 1.5"]),
        (dict(reg=-1.0), ["reg", "Got -1.0"]),
        (dict(batch_size=0), ["batch_size", "Got 0"]),
        (dict(batch_size=2.5), ["batch_size", "2.5"]),
        (dict(epochs=-1), ["epochs", "Got -1"]),
        (dict(batches_per_epoch=0), ["batches_per_epoch", "Got 0"]),
        (dict(init_std=0.0), ["init_std", "Got 0.0"]),
        (dict(eval_every=0), ["eval_every", "Got 0"]),
        (dict(patience=-1), ["patience", "Got -1"]),
        (dict(metric="auc@5"), ["metric must look like", "'auc@5'"]),
        (dict(metric="ndcg"), ["metric must look like", "'ndcg'"]),
        (dict(ks=(0,)), ["ks", "Got 0"]),
        (dict(ks=()), ["ks must hold at least one cutoff"]),
        (dict(seed=-1), ["seed", "Got -1"]),
        (dict(seed=2**64), ["seed must be an int in [0, 9223372036854775807]"]),
        (dict(ks="20"), ["ks must be an int or a list of ints", "'20'"]),
        (dict(extra={"n": np.int64(3)}), ["extra must be JSON-serializable", "int64"]),
        (dict(extra={1: "a", "b": 2}), ["extra must be JSON-serializable"]),
        (dict(sampling="random"), ["sampling must be one of", "'random'"]),
        (dict(kernel="dense"), ["kernel must be", "'dense'"]),
        (dict(device="tpu"), ["device must name a torch device", "'tpu'"]),
    ],
    ids=lambda v: ",".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_fit_rejects_bad_hyperparameters(changes, words):
    with pytest.raises((ValueError, TypeError)) as excinfo:
        LightGCN(**tiny_config(**changes)).fit(tiny_matrix(), show_progress=False)
    assert_clean(excinfo, *words)
    text = repr(LightGCN(**tiny_config(**changes)))  # an invalid model still prints
    assert text.startswith("LightGCN(")


def test_fit_rejects_a_strategy_that_is_not_one():
    with pytest.raises(TypeError) as excinfo:
        LightGCN(**tiny_config()).fit(tiny_matrix(), show_progress=False, strategy="ddp")
    assert_clean(excinfo, "strategy must be None or an execution strategy", "'ddp'")
    from lightgcn_sparse.trainer import SingleProcess

    class NoFinish(SingleProcess):  # fails before training, not after it
        finish = None

    del NoFinish.finish
    partial = type("Partial", (), {n: getattr(SingleProcess, n) for n in ("setup", "shard")})
    with pytest.raises(TypeError) as excinfo:
        LightGCN(**tiny_config()).fit(tiny_matrix(), show_progress=False, strategy=partial())
    assert_clean(excinfo, "'finish'", "'on_writer'")


@pytest.mark.parametrize("ks", [{5, 10}, (k for k in (5, 10)), np.array(5), [np.int64(5)]])
def test_cutoffs_come_in_any_collection_of_ints(ks):
    assert set(LightGCN(**tiny_config(ks=ks)).config.validate().ks) <= {5, 10}


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda m: m.propagate(), ["not fitted yet"]),
        (lambda m: m.loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([2])), ["fitted"]),
        (lambda m: m.divergence(), ["not fitted yet"]),
    ],
)
def test_an_unfitted_model_says_so(call, words):
    with pytest.raises(lightgcn_sparse.NotFittedError) as excinfo:
        call(LightGCN(**tiny_config()))
    assert_clean(excinfo, *words)


def test_similar_users_names_its_own_arguments_and_empty_ks_is_refused():
    model = tiny_model()
    with pytest.raises(ValueError) as excinfo:
        model.similar_users(0, filter_users=[U + 5])
    assert_clean(excinfo, "filter_users must lie in [0, 12)")
    with pytest.raises(ValueError) as excinfo:
        model.evaluate(tiny_matrix(), ks=[])
    assert_clean(excinfo, "ks must hold at least one cutoff")


def test_save_and_load_name_the_path_they_were_given(tmp_path):
    model = tiny_model()
    for call in (lambda: model.save(None), lambda: LightGCN.load(None)):
        with pytest.raises(TypeError) as excinfo:
            call()
        assert_clean(excinfo, "path must be a str or os.PathLike. Got NoneType")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OSError) as excinfo:
        model.save(blocker / "model.npz")  # its folder would be inside a file
    assert_clean(excinfo, f"cannot write {str(blocker / 'model.npz')!r}")
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_device_without_cuda():
    with pytest.raises(ValueError) as excinfo:
        LightGCN(**tiny_config(device="cuda")).fit(tiny_matrix(), show_progress=False)
    assert_clean(excinfo, "device is 'cuda' but CUDA is not available")


def test_unknown_config_field():
    with pytest.raises(TypeError) as excinfo:
        LightGCN(embeding_dim=3)
    assert_clean(excinfo, "unknown Config field(s) ['embeding_dim']")


# ------------------------------------------------------------------ determinism


def test_same_seed_gives_bit_identical_results_on_cpu():
    # Batches of 1024 x 64 floats are big enough for torch's parallel CPU kernels, where a
    # scatter-add (the backward of out[rows]) would sum in a different order on each run.
    rng = np.random.default_rng(0)
    dense = rng.random((300, 200)) < 0.1
    held = dense & (rng.random(dense.shape) < 0.2)
    data = sp.csr_matrix((dense & ~held).astype(np.float32))
    valid = sp.csr_matrix(held.astype(np.float32))
    cfg = dict(embedding_dim=64, epochs=2, batch_size=1024, seed=5)
    a, b = (LightGCN(**cfg).fit(data, valid, show_progress=False) for _ in range(2))
    assert torch.equal(a.embedding_, b.embedding_)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in a.history_]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in b.history_]
    assert a.evaluate(valid) == b.evaluate(valid)
    np.testing.assert_array_equal(a.recommend(np.arange(300))[0], b.recommend(np.arange(300))[0])
    c = LightGCN(**dict(cfg, seed=6)).fit(data, valid, show_progress=False)
    assert not torch.equal(a.embedding_, c.embedding_)


# ------------------------------------------------------------------ CLI


def write_csv(path: Path, users: int = 30, items: int = 25, per_user: int = 6) -> Path:
    rng = np.random.default_rng(0)
    rows = [f"{u},{i}" for u in range(users) for i in rng.choice(items, per_user, replace=False)]
    path.write_text("user,item\n" + "\n".join(rows) + "\n")
    return path


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_cli_error(result, *words: str) -> None:
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    error_lines = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert len(error_lines) == 1, result.output
    line = error_lines[0]
    for word in words:
        assert word in result.output, f"{word!r} not in {result.output!r}"
    assert len(line) > len("Error: ") + 10


# --overwrite: the failing runs below go into the folder of a finished one, which must
# survive them (without it they would be refused before reading their data).
TINY_TRAIN = ["--epochs", "2", "--embedding-dim", "4", "--batch-size", "64", "--quiet",
              "--overwrite"]  # fmt: skip


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    """A finished tiny run: its model.npz must survive every failing command below."""
    root = tmp_path_factory.mktemp("hardening")
    data = write_csv(root / "data.csv")
    result = cli("train", "--dataset", data, "--out", root / "run", *TINY_TRAIN)
    assert result.exit_code == 0, result.output
    return root


def _bad_files(root: Path) -> dict[str, tuple[bytes, list[str]]]:
    good = (root / "data.csv").read_text()
    lines = good.splitlines()
    return {
        "empty.csv": (b"", ["empty.csv", "file is empty"]),
        "header-only.csv": (b"user,item\n", ["header-only.csv", "has no data rows"]),
        "truncated.csv": (
            ("\n".join(lines[:40]) + "\n7,").encode(),
            ["truncated.csv", "line 41", "item is missing (truncated or malformed line?)"],
        ),
        "tabs.csv": (
            good.replace(",", "\t").encode(),
            ["tabs.csv", "found 1 column(s)", "Is the separator right?"],
        ),
        "semicolons.csv": (good.replace(",", ";").encode(), ["semicolons.csv", "separator"]),
        "latin1.csv": (
            (good + "caf\xe9,3\n").encode("latin-1"),
            ["latin1.csv", "not valid UTF-8"],
        ),
        "utf16.csv": (good.encode("utf-16"), ["utf16.csv", "not valid UTF-8"]),
        "extra-columns.csv": (
            "\n".join(x + ",4,881250949,extra" for x in lines[1:]).encode(),
            ["extra-columns.csv", "found 5 column(s), expected 2 to 4"],
        ),
        "bad-rating.csv": (
            ("user,item,rating\n" + "".join(x + ",4\n" for x in lines[1:20]) + "1,2,x\n").encode(),
            ["bad-rating.csv", "line 21", "rating 'x' is not a number"],
        ),
        "binary.csv": (bytes(range(256)) * 8, ["binary.csv"]),
    }


@pytest.mark.parametrize(
    "name",
    [
        "empty.csv",
        "header-only.csv",
        "truncated.csv",
        "tabs.csv",
        "semicolons.csv",
        "latin1.csv",
        "utf16.csv",
        "extra-columns.csv",
        "bad-rating.csv",
        "binary.csv",
    ],
)
def test_cli_bad_data_file(trained_dir, name):
    content, words = _bad_files(trained_dir)[name]
    path = trained_dir / name
    path.write_bytes(content)
    model = trained_dir / "run" / "model.npz"
    before = model.read_bytes()
    result = cli("train", "--dataset", path, "--out", trained_dir / "run", *TINY_TRAIN)
    assert_cli_error(result, *words)
    assert model.read_bytes() == before
    assert_cli_error(cli("info", "--dataset", path), *words)


def test_cli_bad_data_dir(trained_dir, tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_bytes(b"")
    assert_cli_error(cli("info", "--data-dir", folder), "u.data", "file is empty")
    (folder / "u.data").write_text("196\t242\t3\n186\t302")
    assert_cli_error(
        cli("info", "--data-dir", folder), "u.data", "found 3 column(s), expected 4 tab-separated"
    )
    (folder / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\tsoon\n")
    assert_cli_error(cli("info", "--data-dir", folder), "u.data", "line 2", "'soon'")
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert_cli_error(cli("info", "--dataset", empty), "nothing", "no dataset found")
    assert_cli_error(
        cli("info", "--dataset", tmp_path / "missing.csv"), "missing.csv", "neither a known"
    )
    assert_cli_error(cli("info", "--data-dir", trained_dir / "data.csv"), "is a file")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--epochs", "-1"], ["'--epochs'", "must be at least 1 to train anything"]),
        (["--embedding-dim", "0"], ["'--embedding-dim'", "Got 0"]),
        (["--embedding-dim", "-3"], ["'--embedding-dim'", "Got -3"]),
        (["--num-layers", "-1"], ["'--num-layers'", "Got -1"]),
        (["--alpha", "1", "--alpha", "2"], ["'--alpha'", "num_layers + 1 = 4 entries"]),
        (["--num-layers", "1", "--alpha", "1", "--alpha", "-2"], ["'--alpha'", "alpha[1]"]),
        (["--learning-rate", "0"], ["'--learning-rate'", "Got 0.0"]),
        (["--learning-rate", "nan"], ["'--learning-rate'", "Got nan"]),
        (["--learning-rate", "fast"], ["'--learning-rate'", "'fast' is not a valid float"]),
        (["--batch-size", "0"], ["'--batch-size'", "Got 0"]),
        (["--metric", "auc@5"], ["'--metric'", "'auc@5'"]),
        (["--metric", "ndcg@40"], ["'--metric'", "cutoff 40 is larger than the catalogue (25"]),
        (["-k", "0"], ["'-k'", "0 is not in the range x>=1"]),
        (["-k", "26"], ["'-k'", "cutoff 26 is larger than the catalogue (25 items)"]),
        (["--checkpoint-every", "-2"], ["'--checkpoint-every'", "-2"]),
        (["--split-seed", "-1"], ["'--split-seed'", "-1"]),
        (["--split", "magic"], ["'--split'", "'magic'"]),
        (["--min-rating", "nan"], ["'--min-rating'", "min_rating must be finite"]),
        (["--min-rating", "9"], ["needs ratings"]),
        (["--resume", "no-such.npz"], ["'--resume'", "no-such.npz", "does not exist"]),
        (["--kernel", "dense"], ["'--kernel'", "'dense'"]),
        (["--device", "tpu"], ["'--device'", "'tpu'"]),
        (["--preset", "fast"], ["'--preset'", "'fast'"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_cli_train_bad_options(trained_dir, args, words):
    model = trained_dir / "run" / "model.npz"
    before = model.read_bytes()
    out = ["--out", trained_dir / "run", "--overwrite"]  # the finished run must survive
    result = cli("train", "--dataset", trained_dir / "data.csv", *out, *args)
    assert_cli_error(result, *words)
    assert model.read_bytes() == before


def test_cli_train_with_zero_layers(trained_dir, tmp_path):
    result = cli(
        "train", "--dataset", trained_dir / "data.csv", "--out", tmp_path, "--num-layers", "0",
        *TINY_TRAIN,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert LightGCN.load(tmp_path / "model.npz").config.num_layers == 0


@pytest.mark.parametrize(
    "args, words",
    [
        (["recommend", "--user", "99999"], ["unknown user id 99999"]),
        (["recommend", "--user", "abc"], ["unknown user id 'abc': not among the 30 users"]),
        (["recommend", "--user", "1", "-k", "0"], ["'--top'", "0 is not in the range"]),
        (["recommend", "--user", "1", "-k", "26"], ["'--top'", "catalogue holds (25 items)"]),
        (["recommend"], ["exactly one of --user ID or --likes ITEM"]),
        (["recommend", "--user", "1", "--likes", "2"], ["exactly one of --user"]),
        (["similar", "--movie", "3", "-k", "-1"], ["'--top'", "-1"]),
        (["evaluate", "-k", "30"], ["'-k'", "cutoff 30 is larger than the catalogue (25"]),
        (["evaluate", "-k", "0"], ["'-k'", "0 is not in the range"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_cli_inference_bad_options(trained_dir, args, words):
    model = trained_dir / "run" / "model.npz"
    before = model.read_bytes()
    assert_cli_error(cli(*args, "--model", model), *words)
    assert model.read_bytes() == before


def test_cli_unexpected_errors_are_one_line(trained_dir, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("lightgcn_sparse.cli.evaluate_test", broken)
    model = trained_dir / "run" / "model.npz"
    result = cli("evaluate", "--model", model)
    assert_cli_error(result, "unexpected RuntimeError", "illegal memory access", "DEBUG=1")
    assert result.exit_code == 1
    monkeypatch.setenv("LIGHTGCN_SPARSE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="illegal memory access"):
        cli("evaluate", "--model", model)
