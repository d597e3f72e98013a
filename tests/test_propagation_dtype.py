r"""Ways of computing the same propagation: narrow rows (bfloat16, float16) within a derived
bound of float64, node orders equal to the built order up to rounding, and the CPU row
blocks that :class:`~lightgcn_sparse.graph.Graph` chooses between bit-identical.

Error bound of narrow rows (:func:`narrow_bound`), in the Frobenius norm over all (N, d)
entries. Let ``u = eps_n / 2`` be the unit roundoff of the narrow dtype ``n`` (the products'
rows), ``eps_w`` the eps of ``x0``'s dtype ``w`` (embeddings, layer sum, each product's
accumulation), ``m`` the largest degree and ``eta`` half the narrow dtype's smallest
subnormal. Every product ``h_k = round_n(A h_{k-1})`` sums at most ``m`` terms in ``w`` and
rounds its output to ``n``; the layer-0 rows ``h_0 = round_n(x0 / s)`` are rounded on input
(float16 divides by ``s = max|x0|`` first, other dtypes take ``s = 1``). Since
``||A||_2 <= 1`` for :math:`D^{-1/2} A D^{-1/2}`, an error already in ``h_{k-1}`` does not grow
through ``A``, and each product adds at most ``rho ||h_{k-1}|| + eta s sqrt(N d)`` with
``rho = u + (m + 1) eps_w (1 + u)``. By induction, with ``||h_k|| <= (1 + rho)^k (1 + u) ||x0||``,

.. math::
    ||h_k - A^k x_0|| \le (k + 1) \left[\rho (1 + \rho)^k (1 + u) ||x_0|| + \eta s \sqrt{N d}\right]

and the float sum :math:`\sum_k \alpha_k h_k` adds at most
``(K + 3) eps_w sum_k alpha_k (1 + rho)^K (1 + u) ||x0||`` (the K additions, float16's
unscaling and the weight). So

.. math::
    ||Y - Y_{ref}|| \le \sum_{k=1}^{K} \alpha_k (k + 1)
    \left[\rho (1 + \rho)^k (1 + u) ||x_0|| + \eta s \sqrt{N d}\right]
    + (K + 3)\, \epsilon_w (1 + \rho)^K (1 + u) ||x_0|| \sum_k \alpha_k + 4 (K + 1) \tau_w

where ``tau_w`` is the wide dtype's smallest normal (weights that underflow in ``w``, e.g.
``alpha = 1e-300`` in float32). For the usual ``m eps_w << u`` this is about
``sum_k alpha_k (k + 1) u ||x0||``: one rounding of the input and one per product, none of
them amplified. The gradient is the same propagation of the incoming gradient, so the same
bound holds with ``||G||`` for ``||x0||``.

The training step's :func:`propagate_rows` computes the forward values of
:func:`propagate` at its rows (the same sums in the same order: equal bit for bit), and its
backward by Horner's rule, :math:`A(\alpha_1 G + A(\alpha_2 G + \dots A(\alpha_K G)))`,
rounding each partial sum :math:`t_k = \sum_{j \ge k} \alpha_j A^{j-k} G` to the narrow
dtype twice (after the product, after adding the rows). With
:math:`||t_k|| \le \sum_{j \ge k} \alpha_j ||G||` that is at most
:math:`2u \sum_j j \alpha_j ||G||` against the :math:`u \sum_k (k + 1) \alpha_k ||G||` of
the bound above: the gradient stays within twice the bound.

Node orders: a permuted graph sums each row's entries in another order, so results agree
with the built order up to float rounding of the sums (:func:`rounding_bound`).

Row blocks: on CPU with several threads a Graph times one ``embedding_bag`` call against
two calls on halves of equal nnz and keeps the faster; each row's sum is the same either
way, so the results must be equal bit for bit (training stays reproducible).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from strategies import (
    FLOAT_DTYPES,
    KERNELS,
    Graph,
    bipartite_graphs,
    dense_normalized_adjacency,
    dense_propagate,
    float_arrays,
    layer_alphas,
)

from lightgcn_sparse import graph as propagation  # Graph, its kernels and split
from lightgcn_sparse.adjacency import (
    NODE_ORDERS,
    node_order,
    normalized_adjacency,
    permute_adjacency,
)
from lightgcn_sparse.propagation import Graph as PreparedGraph
from lightgcn_sparse.propagation import layer_weights, propagate, propagate_rows

NARROW = (torch.bfloat16, torch.float16)


def max_degree(g: Graph) -> int:
    deg = np.zeros(g.n, dtype=np.int64)
    for u, i in g.pairs():
        deg[u] += 1
        deg[g.num_users + i] += 1
    return int(deg.max(initial=0))


def narrow_bound(
    narrow: torch.dtype, wide: torch.dtype, alpha: list[float], x: np.ndarray, max_deg: int
) -> float:
    """The module docstring's bound on ``||Y - Y_ref||_F`` for products in ``narrow``."""
    info_n, info_w = torch.finfo(narrow), torch.finfo(wide)
    u, eps_w = info_n.eps / 2, info_w.eps
    eta = info_n.smallest_normal * info_n.eps / 2  # half the smallest subnormal
    rho = u + (max_deg + 1) * eps_w * (1 + u)
    norm = float(np.linalg.norm(x.astype(np.float64)))
    scale = float(np.abs(x).max(initial=0.0)) if narrow == torch.float16 else 1.0
    root = math.sqrt(x.size)
    num_layers = len(alpha) - 1
    bound = sum(
        a * (k + 1) * (rho * (1 + rho) ** k * (1 + u) * norm + eta * scale * root)
        for k, a in enumerate(alpha[1:], start=1)
    )
    bound += (num_layers + 3) * eps_w * (1 + rho) ** num_layers * (1 + u) * norm * sum(alpha)
    return bound + 4 * (num_layers + 1) * info_w.smallest_normal


def rounding_bound(dtype: torch.dtype, alpha: list[float], x: np.ndarray, max_deg: int) -> float:
    """Two results in ``dtype`` that sum the same terms in other orders differ by at most
    twice the float error of one: each product's ``m``-term sums, then the layer sum."""
    eps = torch.finfo(dtype).eps
    norm = float(np.linalg.norm(x.astype(np.float64)))
    num_layers = len(alpha) - 1
    one = sum(a * k * (max_deg + 1) * eps for k, a in enumerate(alpha))
    one += (num_layers + 1) * eps * sum(alpha)
    return 2 * (one * norm + 4 * (num_layers + 1) * torch.finfo(dtype).smallest_normal)


def build(g: Graph, device, dtype) -> torch.Tensor:
    return normalized_adjacency(g.users, g.items, g.num_users, g.num_items, dtype=dtype,
                                device=device)  # fmt: skip


@st.composite
def propagation_inputs(draw, g: Graph, dtype: torch.dtype):
    """K, alpha, x0 of ``dtype`` and a seed for the incoming gradient."""
    num_layers = draw(st.integers(0, 4), label="num_layers")
    alpha = draw(layer_alphas(num_layers), label="alpha")
    d = draw(st.integers(1, 4), label="d")
    x = draw(float_arrays((g.n, d), dtype), label="x0")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    return num_layers, alpha, x, seed


@st.composite
def narrow_cases(draw):
    g = draw(bipartite_graphs())
    wide = draw(st.sampled_from(FLOAT_DTYPES), label="x0 dtype")
    narrow = draw(st.sampled_from(NARROW), label="product dtype")
    num_layers, alpha, x, seed = draw(propagation_inputs(g, wide))
    note(f"x0 {wide}, products {narrow}")
    return g, wide, narrow, num_layers, alpha, x, seed


@given(case=narrow_cases())
def test_narrow_rows_within_the_bound_forward_and_gradient(device, case):
    g, wide, narrow, num_layers, alpha, x, seed = case
    adj = build(g, device, wide)
    weights = layer_weights(num_layers, alpha)
    a_hat = dense_normalized_adjacency(g)
    x0 = torch.from_numpy(x).to(device).requires_grad_(True)
    y = propagate(adj, x0, num_layers, alpha, dtype=narrow)
    assert y.dtype == wide and y.shape == x0.shape
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (y * w.to(device=device, dtype=wide)).sum().backward()
    w_cast = w.to(wide).double().numpy()  # the gradient as propagated: rounded to x0's dtype

    for got, ref, src in (
        (y.detach(), dense_propagate(a_hat, x, weights), x),
        (x0.grad, dense_propagate(a_hat, w_cast, weights), w_cast),
    ):
        err = float(np.linalg.norm(got.cpu().double().numpy() - ref))
        bound = narrow_bound(narrow, wide, weights, src, max_degree(g))
        note(f"error {err:.3g}, bound {bound:.3g}")
        assert err <= bound


@given(case=narrow_cases(), data=st.data())
def test_rows_path_with_narrow_rows_forward_exact_gradient_within_twice_the_bound(
    device, case, data
):
    g, wide, narrow, num_layers, alpha, x, seed = case
    assume(g.n > 0)
    rows = data.draw(st.lists(st.integers(0, g.n - 1), max_size=2 * g.n), label="rows")
    at = torch.tensor(rows, dtype=torch.int64, device=device)
    adj = build(g, device, wide)
    weights = layer_weights(num_layers, alpha)
    x0 = torch.from_numpy(x).to(device).requires_grad_(True)
    final, _ = propagate_rows(adj, x0, at, num_layers, alpha, dtype=narrow)
    assert torch.equal(final.detach(), propagate(adj, x0.detach(), num_layers, alpha,
                                                 dtype=narrow)[at])  # fmt: skip
    w = torch.randn(final.shape, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)  # fmt: skip
    (final * w.to(device=device, dtype=wide)).sum().backward()
    g_dense = np.zeros(x.shape, dtype=np.float64)
    np.add.at(g_dense, np.array(rows, dtype=np.int64), w.to(wide).double().numpy())
    ref = dense_propagate(dense_normalized_adjacency(g), g_dense, weights)
    err = float(np.linalg.norm(x0.grad.cpu().double().numpy() - ref))
    bound = 2 * narrow_bound(narrow, wide, weights, g_dense, max_degree(g))
    note(f"error {err:.3g}, bound {bound:.3g}")
    assert err <= bound


def test_narrow_rows_bound_is_tight_enough_to_fail():
    """The bound is not vacuous: real errors come within a small factor of it (random
    graphs: up to a third of it)."""
    g = Graph(3, 4, np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 3]))
    adj = build(g, "cpu", torch.float32)
    x = np.linspace(-1, 1, g.n * 4, dtype=np.float32).reshape(g.n, 4)
    weights = layer_weights(3, None)
    ref = dense_propagate(dense_normalized_adjacency(g), x, weights)
    y = propagate(adj, torch.from_numpy(x), 3, dtype=torch.bfloat16).double().numpy()
    err = float(np.linalg.norm(y - ref))
    bound = narrow_bound(torch.bfloat16, torch.float32, weights, x, max_degree(g))
    assert 0 < err <= bound
    assert err > bound / 16


@st.composite
def order_cases(draw):
    g = draw(bipartite_graphs())
    dtype = draw(st.sampled_from(FLOAT_DTYPES), label="dtype")
    method = draw(st.sampled_from(NODE_ORDERS[1:]), label="node order")
    parts = draw(st.integers(1, 3), label="parts")
    kernel = draw(st.sampled_from(KERNELS), label="kernel")
    num_layers, alpha, x, seed = draw(propagation_inputs(g, dtype))
    return g, dtype, method, parts, kernel, num_layers, alpha, x, seed


@given(case=order_cases())
def test_reordered_propagation_equals_the_built_order(device, case):
    g, dtype, method, parts, kernel, num_layers, alpha, x, seed = case
    adj = build(g, device, dtype)
    order = node_order(adj, method, parts)
    assert sorted(order.tolist()) == list(range(g.n))  # a permutation
    graphs = {"built": PreparedGraph(adj),
              method: PreparedGraph(permute_adjacency(adj, order), order)}  # fmt: skip
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    out = {}
    for name, graph in graphs.items():
        x0 = torch.from_numpy(x).to(device).requires_grad_(True)
        y = propagate(graph, x0, num_layers, alpha, kernel=kernel)
        (y * w.to(device)).sum().backward()
        out[name] = (y.detach(), x0.grad)
    weights = layer_weights(num_layers, alpha)
    deg = max_degree(g)
    for i, src in ((0, x), (1, w.double().numpy())):
        tol = rounding_bound(dtype, weights, src, deg)
        diff = float(torch.linalg.vector_norm((out[method][i] - out["built"][i]).double()))
        note(f"{'forward' if i == 0 else 'gradient'}: diff {diff:.3g}, tol {tol:.3g}")
        assert diff <= tol


@contextlib.contextmanager
def two_blocks_allowed(threads: int = 2):
    """Let any graph take the two-block CPU path: no nnz floor, several threads."""
    floor, before = propagation.SPLIT_MIN_NNZ, torch.get_num_threads()
    propagation.SPLIT_MIN_NNZ = 0
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        propagation.SPLIT_MIN_NNZ = floor
        torch.set_num_threads(before)


@settings(max_examples=30)
@given(
    g=bipartite_graphs(min_users=1, min_items=1),
    dtype=st.sampled_from((*FLOAT_DTYPES, *NARROW)),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    threads=st.sampled_from((2, 3)),
)
def test_one_call_and_two_row_blocks_are_bit_identical(g, dtype, d, seed, threads):
    """One call over the rows padded with empty bags so that two threads' count split
    falls at ``mid``, and two calls on the halves, concatenated: both equal one call."""
    adj = build(g, "cpu", torch.float32)
    crow = adj.crow_indices()
    nnz = int(crow[-1])
    mid = int(torch.searchsorted(crow, torch.tensor(nnz // 2, dtype=crow.dtype)))
    assume(0 < mid < g.n)
    x = torch.randn(g.n, d, generator=torch.Generator().manual_seed(seed)).to(dtype)
    key = (threads, dtype, d)
    results = []
    with two_blocks_allowed(threads):
        for choice in (None, ("two", mid), ("padded", mid)):
            graph = PreparedGraph(adj)
            graph._split[key] = choice  # the automatic selection's options
            results.append(graph.matmul(x, "embedding_bag"))
    for other in results[1:]:
        assert torch.equal(results[0], other)
        assert other.shape == (g.n, d) and other.is_contiguous()


@pytest.mark.parametrize("heavy", ["users", "items"])
def test_padded_split_gives_each_thread_one_block(heavy):
    """The empty bags go before the rows when the first half of the nnz sits in fewer rows
    than the second (a few heavy users), after them otherwise; either way the middle bag
    is ``mid`` and the product is one call's, bit for bit."""
    gen = torch.Generator().manual_seed(4)
    if heavy == "users":  # 4 users with every item: mid = 4, far below N / 2
        users, items = torch.arange(4).repeat_interleave(30), torch.arange(30).repeat(4)
        num_users, num_items = 4, 30
    else:  # 30 users with one item each, 4 items: mid = 30, above N / 2
        users, items = torch.arange(30), torch.arange(30) % 4
        num_users, num_items = 30, 4
    adj = normalized_adjacency(users, items, num_users, num_items)
    graph = PreparedGraph(adj)
    crow = adj.crow_indices()
    mid = int(torch.searchsorted(crow, torch.tensor(int(crow[-1]) // 2, dtype=crow.dtype)))
    padded, start = graph._padded(crow, mid)
    n = adj.shape[0]
    assert padded.numel() - 1 == 2 * max(mid, n - mid)  # the count split is at the middle
    assert int(padded[(padded.numel() - 1) // 2]) == int(crow[mid])  # ... which is row mid
    assert (start > 0) == (2 * mid < n)
    x = torch.randn(n, 5, generator=gen)
    with two_blocks_allowed(2):
        graph._split[(2, torch.float32, 5)] = ("padded", mid)
        split = graph.matmul(x, "embedding_bag")
    assert torch.equal(split, PreparedGraph(adj).matmul(x, "embedding_bag"))


def test_the_row_split_is_chosen_in_place_once_per_adjacency_tensor():
    """The first products of a setting take the choices in turn (bit-identical results),
    then one is kept on the adjacency tensor: later Graphs of it, and bare-tensor calls
    (a new Graph each), reuse it; another width is another setting."""
    gen = torch.Generator().manual_seed(0)
    users = torch.randint(0, 40, (400,), generator=gen)
    items = torch.randint(0, 15, (400,), generator=gen)
    adj = normalized_adjacency(users, items, 40, 15)
    x = torch.randn(55, 8, generator=gen)
    key = (2, torch.float32, 8)
    with two_blocks_allowed():
        first = propagate(adj, x, 3)  # a bare tensor: a new Graph on every call
        trial = adj.__dict__["_lightgcn_split_row"][key]
        assert isinstance(trial, propagation._SplitTrial) and trial.recorded == 3
        mid = trial.choices[1][1]
        assert trial.choices == [None, ("two", mid), ("padded", mid)]
        calls = 3
        while not trial.done():
            assert torch.equal(propagate(adj, x, 3), first)  # every choice: the same bits
            calls += 3
        assert calls == 3 * (1 + propagation.SPLIT_TRIAL_ROUNDS)  # one warm-up each, then rounds
        assert all(len(t) == propagation.SPLIT_TRIAL_ROUNDS for t in trial.seconds)
        assert torch.equal(propagate(adj, x, 3), first)  # this call keeps the best
        chosen = adj.__dict__["_lightgcn_split_row"][key]
        assert chosen == trial.best() and chosen in trial.choices
        graph = PreparedGraph(adj)
        assert not graph.split_chosen(torch.float32, 8)
        assert torch.equal(propagate(graph, x, 3), first)
        assert graph.split_chosen(torch.float32, 8) and graph._split[key] == chosen
        propagate(adj, x[:, :4].contiguous(), 3)  # another width is another setting
        assert isinstance(adj.__dict__["_lightgcn_split_row"][(2, torch.float32, 4)],
                          propagation._SplitTrial)  # fmt: skip
        other = PreparedGraph(adj)
        other.settle_split(x[:, :4].contiguous())
        assert other.split_chosen(torch.float32, 4)
        assert not isinstance(adj.__dict__["_lightgcn_split_row"][(2, torch.float32, 4)],
                              propagation._SplitTrial)  # fmt: skip


def test_the_split_trial_keeps_the_lowest_median_after_the_warm_ups():
    choices = [None, ("two", 3), ("padded", 3)]
    trial = propagation._SplitTrial(choices, rounds=4)
    for choice, seconds in zip(choices, (0.001, 9.0, 9.0)):  # warm-ups: never counted
        slot = trial.claim()
        assert trial.choice(slot) == choice and not trial.done()
        trial.record(slot, seconds)
    times = {None: iter([5, 1, 5, 5]), ("two", 3): iter([2, 2, 9, 1]),
             ("padded", 3): iter([3, 3, 3, 3])}  # medians 5, 2, 3  # fmt: skip
    taken = []
    while (slot := trial.claim()) is not None:
        taken.append(trial.choice(slot))
        trial.record(slot, next(times[taken[-1]]))
    assert trial.done() and trial.claim() is None
    assert sorted(map(str, taken)) == sorted(map(str, choices * 4))  # 4 rounds of each
    rounds = [taken[i : i + 3] for i in range(0, 12, 3)]
    assert all(sorted(map(str, r)) == sorted(map(str, choices)) for r in rounds)
    assert len({tuple(map(str, r)) for r in rounds}) > 1  # shuffled: not one fixed order
    assert trial.best() == ("two", 3)


def test_the_split_trial_survives_products_in_flight_and_failures():
    """Slots are claimed, so two products never share one; a slot claimed and not yet
    recorded keeps the trial open (other products go untimed); a failed product uses up
    its slot untimed, and a choice never timed counts as slowest."""
    trial = propagation._SplitTrial([None, ("two", 1)], rounds=1)
    slots = [trial.claim() for _ in range(4)]
    assert slots == [0, 1, 2, 3] and trial.claim() is None and not trial.done()
    for slot in slots[:3]:
        trial.record(slot, None if trial.choice(slot) == ("two", 1) else 1.0)
    assert not trial.done()  # one product still running
    trial.record(slots[3], None if trial.choice(slots[3]) == ("two", 1) else 1.0)
    assert trial.done() and trial.best() is None  # "two" failed every time: never timed


def test_concurrent_products_share_one_trial_and_agree():
    """Threads propagating through one adjacency at once (a served model whose trial is
    under way) never fail and get the same bits."""
    import threading

    gen = torch.Generator().manual_seed(0)
    users = torch.randint(0, 40, (400,), generator=gen)
    items = torch.randint(0, 15, (400,), generator=gen)
    adj = normalized_adjacency(users, items, 40, 15)
    x = torch.randn(55, 8, generator=gen)
    with two_blocks_allowed():
        expected = propagate(PreparedGraph(adj), x, 3)
        adj.__dict__.pop("_lightgcn_split_row")  # a fresh trial for the threads
        results, errors = [], []

        def work() -> None:
            try:
                for _ in range(10):
                    results.append(propagate(adj, x, 3))
            except Exception as err:  # noqa: BLE001 - reported by the assertion below
                errors.append(err)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and len(results) == 40
    assert all(torch.equal(r, expected) for r in results)


@pytest.mark.parametrize("method", NODE_ORDERS[1:])
def test_every_node_order_of_an_empty_graph_is_empty(method):
    """0 users and 0 items (hypothesis found scipy's RCM failing on it)."""
    adj = normalized_adjacency([], [], 0, 0)
    order = node_order(adj, method)
    assert order.shape == (0,) and order.dtype == torch.int64
    out = propagate(PreparedGraph(permute_adjacency(adj, order), order), torch.ones(0, 2), 2)
    assert out.shape == (0, 2)


def test_scratch_buffers_do_not_grow_with_the_batch_rows():
    """A training step's batch has a different number of unique rows each time; the
    narrow-dtype step widens them through a scratch buffer, which must be reused (keyed by
    the full shape, Gowalla's bfloat16 steps kept one per count: 150 MiB after 200 steps)."""
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 40, 240), rng.integers(0, 30, 240)
    keep = np.unique(users * 30 + items)
    graph = PreparedGraph(normalized_adjacency(keep // 30, keep % 30, 40, 30))
    x0 = torch.randn(70, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    gen = torch.Generator().manual_seed(1)
    counts = []
    for size in range(5, 60, 3):  # 19 different row counts
        rows = torch.randperm(70, generator=gen)[:size]
        final, layer0 = propagate_rows(graph, x0, rows, 3, dtype=torch.bfloat16)
        (final.sum() + layer0.sum()).backward()
        full = propagate(graph, x0.detach(), 3, dtype=torch.bfloat16)
        assert torch.equal(final.detach(), full[rows])  # views of a larger buffer are right
        counts.append(len(graph._local.buffers))
    assert max(counts) == counts[0] <= 4, counts
    for buf in graph._local.buffers.values():
        assert buf.shape[0] <= 70


@pytest.mark.parametrize("tiny", [1e-9, 1e-30, 1e30])
def test_float16_rows_gradient_keeps_tiny_layer_weights(tiny):
    """The batch-rows backward rounds each term ``a_k G`` to float16 after its weight is
    applied; scaled by ``max|G|`` alone, ``1e-9 G`` flushed to zero and the gradient with
    it (hypothesis found this: one edge, alpha (0, 1e-9)). Scaled by the weights too, it
    keeps float16's relative precision."""
    adj = normalized_adjacency([0], [0], 1, 1)
    x0 = torch.zeros(2, 3, requires_grad=True)
    w = torch.tensor([[0.3, -1.5, 0.7]])
    final, _ = propagate_rows(adj, x0, torch.tensor([0]), 1, [0.0, tiny], dtype=torch.float16)
    (final * w).sum().backward()
    expected = torch.zeros(2, 3, dtype=torch.float64)
    expected[1] = tiny * w[0].double()  # A moves row 0's gradient to row 1 (weight 1)
    torch.testing.assert_close(x0.grad.double(), expected, rtol=2e-3, atol=0.0)


def test_float16_rows_gradient_with_zero_layer_weights_is_zero():
    adj = normalized_adjacency([0, 1], [0, 0], 2, 1)
    x0 = torch.randn(3, 4, requires_grad=True)
    final, _ = propagate_rows(adj, x0, torch.tensor([0, 2]), 2, [1.0, 0.0, 0.0],
                              dtype=torch.float16)  # fmt: skip
    final.sum().backward()
    expected = torch.zeros(3, 4)
    expected[[0, 2]] = 1.0  # the layer-0 term only
    assert torch.equal(x0.grad, expected)
