"""Top-K ranking and metrics against a plain-Python reference written with loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st
from strategies import bipartite_graphs

from lightgcn_sparse.metrics import METRICS, evaluate_ranking, metrics_from_hits, topk_scores
from lightgcn_sparse.user_items import UserItemIndex, user_items_from_pairs

# --- the reference ----------------------------------------------------------------------


def ref_ranking(scores: list[list[float]], seen: list[set[int]], k: int) -> list[list[int]]:
    """Each user's top-k unseen items by score, best first (shorter if fewer are unseen)."""
    out = []
    for u, row in enumerate(scores):
        candidates = [i for i in range(len(row)) if i not in seen[u]]
        candidates.sort(key=lambda i: -row[i])
        out.append(candidates[:k])
    return out


def ref_user_metrics(ranked: list[int], truth: set[int], k: int) -> dict[str, float]:
    """Recall, precision, hit, NDCG and MAP at k for one user, from the module docstring."""
    rel = [1 if j < len(ranked) and ranked[j] in truth else 0 for j in range(k)]
    hits = sum(rel)
    dcg = 0.0
    for j in range(k):
        if rel[j]:
            dcg += 1.0 / math.log2(j + 2)
    idcg = 0.0
    for j in range(min(len(truth), k)):
        idcg += 1.0 / math.log2(j + 2)
    ap = 0.0
    running = 0
    for j in range(k):
        running += rel[j]
        if rel[j]:
            ap += running / (j + 1)
    return {
        "recall": hits / len(truth),
        "precision": hits / k,
        "hit": 1.0 if hits > 0 else 0.0,
        "ndcg": dcg / idcg,
        "map": ap / min(len(truth), k),
    }


def ref_evaluate(scores, truth: list[set[int]], seen: list[set[int]], ks) -> dict[str, float]:
    ranked = ref_ranking(scores, seen, max(ks))
    users = [u for u in range(len(truth)) if truth[u]]  # users without test items excluded
    result: dict[str, float] = {}
    for k in ks:
        for name in METRICS:
            total = 0.0
            for u in users:
                total += ref_user_metrics(ranked[u][:k], truth[u], k)[name]
            result[f"{name}@{k}"] = total / len(users) if users else float("nan")
    result["users"] = len(users)
    return result


def sets_of(ui: UserItemIndex) -> list[set[int]]:
    indptr, indices = ui.indptr.tolist(), ui.indices.tolist()
    return [set(indices[indptr[u] : indptr[u + 1]]) for u in range(ui.num_users)]


# --- strategies -------------------------------------------------------------------------


@st.composite
def ranking_cases(draw, min_items: int = 1):
    """Embeddings plus held-out and seen interactions over the same users and items."""
    g = draw(bipartite_graphs(min_items=min_items))
    seen_edges = draw(
        bipartite_graphs(
            min_users=g.num_users,
            max_users=g.num_users,
            min_items=g.num_items,
            max_items=g.num_items,
        )
    )
    d = draw(st.integers(1, 4), label="d")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    gen = torch.Generator().manual_seed(seed)
    # float64 normals: ties between scores have probability zero, so rankings are unique
    user_emb = torch.randn(g.num_users, d, generator=gen, dtype=torch.float64)
    item_emb = torch.randn(g.num_items, d, generator=gen, dtype=torch.float64)
    ks = draw(st.lists(st.integers(1, g.num_items), min_size=1, max_size=3), label="ks")
    truth = user_items_from_pairs(g.users, g.items, g.num_users, g.num_items)
    seen = user_items_from_pairs(seen_edges.users, seen_edges.items, g.num_users, g.num_items)
    note(f"U={g.num_users} I={g.num_items} d={d} ks={ks}")
    return user_emb, item_emb, truth, seen, ks


# --- evaluate_ranking -------------------------------------------------------------------


@given(case=ranking_cases(), exclude_seen=st.booleans())
def test_evaluate_equals_reference(device, case, exclude_seen):
    user_emb, item_emb, truth, seen, ks = case
    scores = (user_emb @ item_emb.T).tolist()
    seen_sets = sets_of(seen) if exclude_seen else [set()] * truth.num_users
    expected = ref_evaluate(scores, sets_of(truth), seen_sets, sorted(set(ks)))
    got = evaluate_ranking(
        user_emb.to(device),
        item_emb.to(device),
        truth.to(device),
        seen.to(device) if exclude_seen else None,
        ks,
    )
    assert set(got) == set(expected)
    assert got["users"] == expected["users"]
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


@given(case=ranking_cases(), chunk_bytes=st.integers(1, 200))
def test_evaluate_chunking_gives_same_result(device, case, chunk_bytes):
    user_emb, item_emb, truth, seen, ks = case
    args = (user_emb.to(device), item_emb.to(device), truth.to(device), seen.to(device), ks)
    whole = evaluate_ranking(*args)
    chunked = evaluate_ranking(*args, chunk_bytes=chunk_bytes)
    assert whole.keys() == chunked.keys()
    for name in whole:
        assert whole[name] == pytest.approx(chunked[name], rel=1e-12, abs=1e-12, nan_ok=True)


def test_users_without_test_items_are_excluded(device):
    gen = torch.Generator().manual_seed(0)
    user_emb = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    item_emb = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    truth = user_items_from_pairs([0, 0, 2], [1, 4, 5], 4, 6)
    base = evaluate_ranking(user_emb.to(device), item_emb.to(device), truth.to(device), ks=[3])
    assert base["users"] == 2
    # users 1 and 3 have no test items: changing their embeddings changes nothing
    other = user_emb.clone()
    other[[1, 3]] = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    again = evaluate_ranking(other.to(device), item_emb.to(device), truth.to(device), ks=[3])
    assert again == base


def test_no_test_users_gives_nan():
    truth = user_items_from_pairs([], [], 2, 3)
    out = evaluate_ranking(torch.ones(2, 2), torch.ones(3, 2), truth, ks=[1, 3])
    assert out["users"] == 0
    assert all(math.isnan(v) for k, v in out.items() if k != "users")


def test_metrics_known_values():
    # ranking: item 0 (hit), 1 (miss), 2 (hit); |T| = 2
    hits = torch.tensor([[True, False, True]])
    m = metrics_from_hits(hits, torch.tensor([2]), [1, 3])
    assert float(m["recall@3"]) == pytest.approx(1.0)
    assert float(m["precision@3"]) == pytest.approx(2 / 3)
    assert float(m["hit@1"]) == 1.0
    idcg = 1 + 1 / math.log2(3)
    assert float(m["ndcg@3"]) == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    assert float(m["map@3"]) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert float(m["map@1"]) == pytest.approx(1.0)
    assert float(m["recall@1"]) == pytest.approx(0.5)


@given(
    rows=st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=8),
    extra=st.lists(st.integers(0, 3), min_size=8, max_size=8),
    ks=st.lists(st.integers(1, 6), min_size=1, max_size=3),
)
def test_metrics_from_hits_equal_reference(rows, extra, ks):
    num_truth = [max(1, sum(r) + e) for r, e in zip(rows, extra)]
    m = metrics_from_hits(torch.tensor(rows), torch.tensor(num_truth), ks)
    for u, (row, n) in enumerate(zip(rows, num_truth)):
        # a ranked list whose hits match `row`, against a truth set of size n
        truth = set(range(100, 100 + n))
        hit_items = iter(sorted(truth))
        ranked = [next(hit_items) if r else -1 - j for j, r in enumerate(row)]
        for k in ks:
            ref = ref_user_metrics(ranked[:k], truth, k)
            for name in METRICS:
                assert float(m[f"{name}@{k}"][u]) == pytest.approx(ref[name], abs=1e-12)


# --- topk_scores ------------------------------------------------------------------------


@given(case=ranking_cases(), k_frac=st.floats(0, 1), mask_seed=st.integers(0, 2**32 - 1))
def test_topk_excludes_seen_and_matches_reference(device, case, k_frac, mask_seed):
    user_emb, item_emb, _, seen, _ = case
    num_items = item_emb.shape[0]
    k = 1 + int(k_frac * (num_items - 1))
    mask = torch.rand(num_items, generator=torch.Generator().manual_seed(mask_seed)) > 0.2
    users = torch.arange(user_emb.shape[0])
    ids, scores = topk_scores(
        user_emb.to(device),
        item_emb.to(device),
        k,
        seen.to(device),
        users.to(device),
        mask.to(device),
    )
    assert ids.shape == scores.shape == (user_emb.shape[0], k)
    assert ids.dtype == torch.int64 and ids.device.type == device
    seen_sets = sets_of(seen)
    blocked = [s | {i for i in range(num_items) if not mask[i]} for s in seen_sets]
    expected = ref_ranking((user_emb @ item_emb.T).tolist(), blocked, k)
    for u in range(user_emb.shape[0]):
        row_ids, row_sc = ids[u].tolist(), scores[u].tolist()
        finite = [j for j, s in enumerate(row_sc) if s != -math.inf]
        assert finite == list(range(len(expected[u]))), "-inf only after all candidates"
        assert row_ids[: len(finite)] == expected[u]
        assert not set(row_ids[: len(finite)]) & blocked[u], "a seen or masked item was ranked"
        assert row_sc == sorted(row_sc, reverse=True)
        for i, s in zip(row_ids[: len(finite)], row_sc):
            assert s == pytest.approx(float(user_emb[u] @ item_emb[i]), rel=1e-12, abs=1e-12)


@given(case=ranking_cases(), chunk_bytes=st.integers(1, 200))
def test_topk_chunking_gives_same_result(device, case, chunk_bytes):
    user_emb, item_emb, _, seen, ks = case
    users = torch.arange(user_emb.shape[0], device=device)
    args = (user_emb.to(device), item_emb.to(device), max(ks), seen.to(device), users)
    ids1, sc1 = topk_scores(*args)
    ids2, sc2 = topk_scores(*args, chunk_bytes=chunk_bytes)
    finite = torch.isfinite(sc1)
    assert torch.equal(finite, torch.isfinite(sc2))
    assert torch.equal(ids1[finite], ids2[finite])
    torch.testing.assert_close(sc1, sc2, rtol=1e-12, atol=1e-12)


def test_topk_without_exclusion_on_float32(device):
    user_emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]], device=device)
    item_emb = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]], device=device)
    ids, scores = topk_scores(user_emb, item_emb, 2)
    assert ids.tolist() == [[0, 2], [1, 2]]
    assert scores.tolist() == [[3.0, 1.0], [2.0, 1.0]]
    ids, _ = topk_scores(user_emb, item_emb, 3, chunk_bytes=1)
    assert ids.tolist() == [[0, 2, 1], [1, 2, 0]]


def test_topk_of_no_users():
    ids, scores = topk_scores(torch.ones(0, 2), torch.ones(4, 2), 3)
    assert ids.shape == scores.shape == (0, 3)
    assert ids.dtype == torch.int64 and scores.dtype == torch.float32


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k,exc,match",
    [
        (0, ValueError, r"k must be an int in \[1, 5\]\. Got 0 instead"),
        (6, ValueError, r"k must be an int in \[1, 5\]\. Got 6 instead"),
        (-1, ValueError, r"k must be an int in \[1, 5\]\. Got -1 instead"),
        (2.0, TypeError, r"k must be an int in \[1, 5\]\. Got 2\.0 instead"),
        (None, TypeError, r"k must be an int .*Got None"),
    ],
)
def test_topk_k_out_of_range(k, exc, match):
    with pytest.raises(exc, match=match):
        topk_scores(torch.ones(2, 3), torch.ones(5, 3), k)


@pytest.mark.parametrize(
    "ks,exc,match",
    [
        ([0], ValueError, r"ks must be an int in \[1, 4\]\. Got 0 instead"),
        ([2, 5], ValueError, r"ks must be an int in \[1, 4\]\. Got 5 instead"),
        ([1.5], TypeError, r"ks must be an int .*Got 1\.5"),
        ([], ValueError, r"ks must hold at least one cutoff"),
        ("20", TypeError, r"ks must be an int or a list of ints\. Got '20'"),
        (True, TypeError, r"ks must be an int or a list of ints\. Got True"),
    ],
)
def test_evaluate_bad_ks(ks, exc, match):
    truth = user_items_from_pairs([0], [1], 2, 4)
    with pytest.raises(exc, match=match):
        evaluate_ranking(torch.ones(2, 3), torch.ones(4, 3), truth, ks=ks)


def test_exclude_without_users_raises():
    ui = user_items_from_pairs([0], [1], 2, 4)
    with pytest.raises(ValueError, match=r"users must be given together with exclude"):
        topk_scores(torch.ones(2, 3), torch.ones(4, 3), 2, exclude=ui)


def test_reference_is_sound():
    """The reference itself on a hand-checked case (so a wrong reference cannot hide bugs)."""
    ranked = ref_ranking([[0.1, 0.9, 0.5, 0.3]], [{2}], 3)
    assert ranked == [[1, 3, 0]]
    m = ref_user_metrics(ranked[0], {3, 2}, 3)
    assert m["recall"] == 0.5 and m["precision"] == pytest.approx(1 / 3) and m["hit"] == 1.0
    assert m["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m["map"] == pytest.approx((1 / 2) / 2)
    np.testing.assert_equal(ref_evaluate([[1.0, 0.0]], [set()], [set()], [1])["users"], 0)


def test_topk_refuses_masks_and_users_that_would_filter_the_wrong_items():
    ue, ie = torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[3.0, 0], [2.0, 0], [1.0, 0]])
    with pytest.raises(ValueError, match=r"item_mask must be a \(3,\) bool tensor"):
        topk_scores(ue, ie, 1, item_mask=torch.tensor([0, 1, 1]))  # ~int is a bitwise not
    ids, _ = topk_scores(ue, ie, 1, item_mask=torch.tensor([False, True, True]))
    assert ids.tolist() == [[1], [1]]
    seen = user_items_from_pairs([0, 1], [0, 0], 2, 3)
    with pytest.raises(ValueError, match=r"users must be a \(2,\) tensor"):
        topk_scores(ue, ie, 1, seen, torch.tensor([0]))  # row 1 would not be filtered
    with pytest.raises(ValueError, match=r"users must lie in \[0, 2\)"):
        topk_scores(ue, ie, 1, seen, torch.tensor([0, 5]))
    assert topk_scores(ue, ie, 1, seen, torch.tensor([0, 1]))[0].tolist() == [[1], [1]]


@pytest.mark.parametrize(
    "user_emb,item_emb,truth_items,match",
    [
        (torch.ones(2, 3), torch.ones(3, 3), 5, r"truth must have 3 columns"),
        (torch.ones(2, 3), torch.ones(4, 2), 4, r"the same d, dtype and device"),
        (torch.ones(2, 3), torch.ones(4, 3, dtype=torch.float64), 4, r"the same d, dtype"),
        (torch.full((2, 3), math.nan), torch.ones(4, 3), 4, r"user_emb holds NaN"),
        (torch.ones(2, 3, dtype=torch.int64), torch.ones(4, 3), 4, r"2-D floating tensor"),
    ],
)
def test_evaluate_refuses_mismatched_or_broken_embeddings(user_emb, item_emb, truth_items, match):
    truth = user_items_from_pairs([0], [1], 2, truth_items)
    with pytest.raises(ValueError, match=match):
        evaluate_ranking(user_emb, item_emb, truth, ks=(1,))


def test_evaluate_takes_scipy_matrices_and_checks_their_shape():
    import scipy.sparse as sp

    g = torch.Generator().manual_seed(0)
    ue, ie = torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    test = sp.csr_matrix(([1.0, 1.0], ([0, 2], [1, 4])), shape=(3, 5))
    train = sp.csr_matrix(([1.0], ([0], [2])), shape=(3, 5))
    got = evaluate_ranking(ue, ie, test, exclude=train, ks=5)
    want = evaluate_ranking(ue, ie, user_items_from_pairs([0, 2], [1, 4], 3, 5),
                            user_items_from_pairs([0], [2], 3, 5), ks=(5,))  # fmt: skip
    assert got == want and got["users"] == 2
    with pytest.raises(ValueError, match=r"exclude must have 3 rows"):
        evaluate_ranking(ue, ie, test, exclude=sp.csr_matrix((4, 5)), ks=5)
    with pytest.raises(TypeError, match=r"user_emb must be a torch.Tensor"):
        evaluate_ranking(ue.numpy(), ie, test)


def test_models_rank_without_checking_their_own_factors_on_every_call(monkeypatch):
    """recommend / similar_items rank with the model's own (checked) factors: the O(I d)
    checks of the public functions run once per evaluation, never per recommend call."""
    import scipy.sparse as sp

    from lightgcn_sparse import LightGCN, metrics

    model = LightGCN(embedding_dim=4, epochs=1).fit(
        sp.random(12, 10, density=0.4, format="csr", random_state=0), show_progress=False
    )
    calls = []
    monkeypatch.setattr(metrics, "_check_embeddings", lambda *a: calls.append(a))
    model.recommend(0, N=3)
    model.recommend([0, 1], N=3, filter_items=[2])
    model.similar_items(1, N=3)
    assert calls == []
    model.evaluate(sp.random(12, 10, density=0.2, format="csr", random_state=1), ks=(3,))
    assert len(calls) == 1
