"""LightGCN++: the scaled, layer-normalized propagation against a dense float64 reference,
its gradient, plain LightGCN left bit for bit as it was, the config, the model and its files.

Lee et al., "Revisiting LightGCN: Unexpected Inflexibility, Inconsistency, and A Remedy
Towards Improved Recommendation", RecSys 2024.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner
from contract import RecommenderBaseTestMixin, small_config
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from strategies import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    KERNELS,
    Graph,
    bipartite_graphs,
    dense_adjacency,
    float_arrays,
    layer_alphas,
)
from test_resume import Interrupted, interrupted_after  # a crash mid-epoch

from lightgcn_sparse.adjacency import (
    NODE_ORDERS,
    adjacency_degrees,
    degree_scaling,
    node_order,
    normalized_adjacency,
    permute_adjacency,
)
from lightgcn_sparse.checkpoint import CheckpointError
from lightgcn_sparse.config import PRESETS, Config, gamma_weights, preset
from lightgcn_sparse.model import LightGCN
from lightgcn_sparse.propagation import Graph as Prepared
from lightgcn_sparse.propagation import layer_weights, propagate

NEW_FIELDS = ("norm_left", "norm_right", "layer_norm")
#: Exponents drawn for the normalization: the paper's, the plain one, the ends, any.
NORMS = st.one_of(st.sampled_from([0.6, -0.1, 0.5, 0.0, 1.0, -1.0]), st.floats(-1.0, 1.0))


# ---------------------------------------------------------------------------------------
# The dense float64 reference, written from the paper's equations.
# ---------------------------------------------------------------------------------------


def dense_scaled_adjacency(g: Graph, a: float, b: float) -> np.ndarray:
    """(N, N) float64 D^-a A D^-b: entry (u, i) is d_u^-a d_i^-b, zero off the edges."""
    adj = dense_adjacency(g)
    deg = adj.sum(1)
    safe = np.where(deg > 0, deg, 1.0)  # isolated nodes have no entries either way
    return safe[:, None] ** -a * adj * safe[None, :] ** -b


def dense_lightgcnpp(g: Graph, x: np.ndarray, alpha, a: float, b: float, layer_norm: bool):
    """float64 ``sum_k alpha_k E_k``, ``E_{k+1} = D^-a A D^-b rownorm(E_k)``, with the scale
    of the rounding error: (the result, an elementwise bound on its terms, the conditioning
    of the row normalizations: the product over layers of the smallest ratio of a row's
    norm to the norm of its terms' magnitudes, 1 without normalization)."""
    m = dense_scaled_adjacency(g, a, b)
    h = x.astype(np.float64)
    bound = np.abs(h)
    out, out_bound, cond = alpha[0] * h, alpha[0] * bound, 1.0
    for w in alpha[1:]:
        if layer_norm:
            norm = np.linalg.norm(h, axis=1, keepdims=True)
            scale = np.linalg.norm(bound, axis=1, keepdims=True)
            if np.any(scale > 0):
                cond *= float((norm[scale > 0] / scale[scale > 0]).min())
            h = h / np.maximum(norm, 1e-12)  # F.normalize's definition: zero rows stay zero
            bound = np.abs(h)
        h = m @ h
        bound = np.abs(m) @ bound
        out, out_bound = out + w * h, out_bound + w * bound
    return out, out_bound, cond


def max_degree(g: Graph) -> int:
    adj = dense_adjacency(g)
    return int(adj.sum(1).max()) if adj.size else 0


def prepared(
    g: Graph, dtype=torch.float64, order="none", index_dtype=None, device="cpu"
) -> Prepared:
    """The graph as the model keeps it: S = D^-1/2 A D^-1/2 in an optional node order."""
    adj = normalized_adjacency(g.users, g.items, g.num_users, g.num_items, dtype=dtype,
                               device=device, index_dtype=index_dtype)  # fmt: skip
    perm = node_order(adj, order)
    return Prepared(adj if perm is None else permute_adjacency(adj, perm), perm)


@st.composite
def cases(draw, dtypes=FLOAT_DTYPES, max_nodes: int = 12):
    g = draw(bipartite_graphs(max_users=max_nodes, max_items=max_nodes))
    dtype = draw(st.sampled_from(dtypes))
    num_layers = draw(st.integers(0, 4), label="num_layers")
    alpha = draw(layer_alphas(num_layers), label="alpha")
    a, b = draw(NORMS, label="norm_left"), draw(NORMS, label="norm_right")
    layer_norm = draw(st.booleans(), label="layer_norm")
    kernel = draw(st.sampled_from(KERNELS), label="kernel")
    order = draw(st.sampled_from(NODE_ORDERS), label="node_order")
    index_dtype = draw(st.sampled_from(INDEX_DTYPES), label="index_dtype")
    d = draw(st.integers(1, 4), label="d")
    note(f"dtype={dtype} K={num_layers} a={a} b={b} layer_norm={layer_norm} order={order}")
    return g, dtype, num_layers, alpha, (a, b, layer_norm), kernel, order, index_dtype, d


# ---------------------------------------------------------------------------------------
# Propagation
# ---------------------------------------------------------------------------------------


@given(case=cases(), data=st.data())
def test_scaled_propagation_equals_dense_reference(device, case, data):
    g, dtype, num_layers, alpha, (a, b, layer_norm), kernel, order, index_dtype, d = case
    x = data.draw(float_arrays((g.n, d), dtype), label="x0")
    weights = layer_weights(num_layers, alpha)
    expected, bound, cond = dense_lightgcnpp(g, x, weights, a, b, layer_norm)
    assume(cond >= 1e-4)  # a row that nearly cancels has no accurate direction to compare
    graph = prepared(g, dtype, order, index_dtype, device)
    y = propagate(graph, torch.from_numpy(x).to(device), num_layers, alpha, kernel=kernel,
                  norm_left=a, norm_right=b, layer_norm=layer_norm)  # fmt: skip
    assert y.shape == (g.n, d) and y.dtype == dtype
    # Each layer adds a few ulps per summed term (max_deg) and per scaling; a normalization
    # divides the error carried in by the row's conditioning.
    info = torch.finfo(dtype)
    ops = (num_layers + 1) * (max_degree(g) + 6)
    scale = float(bound.max()) if bound.size else 0.0
    tol = 8 * info.eps * ops * scale / cond + 4 * info.tiny * ops
    note(f"tol={tol:.3g} cond={cond:.3g}")
    np.testing.assert_allclose(y.cpu().double().numpy(), expected, rtol=0, atol=tol)


@given(case=cases(dtypes=(torch.float64,)), data=st.data())
def test_layer_norm_ignores_the_scale_of_each_row(case, data):
    """rownorm(c x) = rownorm(x) for c > 0: every layer after the first is scale-free,
    however small the rows (an eps that clips small norms would break this)."""
    g, _, num_layers, _, (a, b, _), kernel, order, index_dtype, d = case
    assume(g.n > 0)
    num_layers = max(num_layers, 1)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    x = torch.randn(g.n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    assume(bool((x.norm(dim=1) > 1e-3).all()))
    scale = torch.tensor(
        data.draw(st.lists(st.floats(1e-8, 1e8), min_size=g.n, max_size=g.n), label="scales"),
        dtype=torch.float64,
    )[:, None]  # (N, 1)
    alpha = [0.0] + [1.0] * num_layers  # the layers k >= 1 only
    graph = prepared(g, torch.float64, order, index_dtype)
    ys = [propagate(graph, x0, num_layers, alpha, kernel=kernel, norm_left=a, norm_right=b,
                    layer_norm=True) for x0 in (x, x * scale)]  # fmt: skip
    torch.testing.assert_close(ys[1], ys[0], rtol=1e-12, atol=1e-12 * float(ys[0].abs().max()))


@settings(max_examples=30)
@given(case=cases(dtypes=(torch.float64,), max_nodes=6), seed=st.integers(0, 2**32 - 1))
def test_gradcheck_float64(case, seed):
    g, _, num_layers, alpha, (a, b, layer_norm), kernel, order, index_dtype, d = case
    assume(g.n > 0)
    num_layers = min(num_layers, 3)
    alpha = None if alpha is None else alpha[: num_layers + 1]
    x = torch.randn(g.n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    weights = layer_weights(num_layers, alpha)
    _, _, cond = dense_lightgcnpp(g, x.numpy(), weights, a, b, layer_norm)
    assume(cond >= 1e-2)  # finite differences need rows well away from zero
    graph = prepared(g, torch.float64, order, index_dtype)

    def fn(x0):
        return propagate(graph, x0, num_layers, alpha, kernel=kernel,
                         norm_left=a, norm_right=b, layer_norm=layer_norm)  # fmt: skip

    assert torch.autograd.gradcheck(fn, (x.requires_grad_(True),), eps=1e-6, atol=1e-6)


@given(case=cases(), data=st.data())
def test_half_normalization_without_layer_norm_is_plain_bit_for_bit(device, case, data):
    g, dtype, num_layers, alpha, _, kernel, order, index_dtype, d = case
    x = data.draw(float_arrays((g.n, d), dtype), label="x0")
    graph = prepared(g, dtype, order, index_dtype, device)
    w = torch.from_numpy(data.draw(float_arrays((g.n, d), dtype), label="upstream")).to(device)
    outs = []
    for extra in ({}, dict(norm_left=0.5, norm_right=0.5, layer_norm=False)):
        x0 = torch.from_numpy(x).to(device).requires_grad_(True)
        y = propagate(graph, x0, num_layers, alpha, kernel=kernel, **extra)
        # the plain path: one autograd node whose backward is the same propagation
        assert type(y.grad_fn).__name__ == "_SymmetricPropagateBackward"
        (y * w).sum().backward()
        with torch.no_grad():
            inference = propagate(graph, x0, num_layers, alpha, kernel=kernel, **extra)
        outs.append((y.detach(), x0.grad, inference))
    for plain, same in zip(*outs):  # CUDA's sparse kernels need not repeat sums bit for bit
        assert torch.equal(plain, same) if device == "cpu" else torch.allclose(plain, same)


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("dtype, rel", [(torch.bfloat16, 1e-2), (torch.float16, 1.5e-3)])
def test_narrow_rows_stay_close_to_float32(layer_norm, dtype, rel):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 300, 4000), rng.integers(0, 200, 4000)
    adj = Prepared(normalized_adjacency(users, items, 300, 200))
    x = torch.from_numpy(rng.standard_normal((500, 16)).astype(np.float32))
    upstream = torch.from_numpy(rng.standard_normal((500, 16)).astype(np.float32)) * 1e-9
    results = []
    for rows in (torch.float32, dtype):
        x0 = x.clone().requires_grad_(True)
        y = propagate(adj, x0, 3, [0.2] + [0.8 / 3] * 3, dtype=rows, norm_left=0.6,
                      norm_right=-0.1, layer_norm=layer_norm)  # fmt: skip
        (y * upstream).sum().backward()  # tiny gradients must not vanish in float16
        assert y.dtype == torch.float32
        results.append((y.detach(), x0.grad))
    for wide, narrow in zip(*results):
        assert float((narrow - wide).norm() / wide.norm()) < rel


def test_scalings_are_degree_powers_in_computing_order():
    users, items = np.array([0, 0, 0, 1, 1, 2, 0]), np.array([0, 1, 2, 0, 1, 0, 0])
    adj = normalized_adjacency(users, items, 4, 3, dtype=torch.float64)  # user 3 isolated
    deg = adjacency_degrees(adj)
    assert deg.tolist() == [3, 2, 1, 0, 3, 2, 1]
    scaled = degree_scaling(deg, -0.6, torch.float64)
    powers = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64) ** -0.6
    assert scaled[3] == 1.0 and torch.equal(scaled[:3], powers)  # isolated: 1, not inf
    order = node_order(adj, "degree")
    graph = Prepared(permute_adjacency(adj, order), order)
    left, right = graph.scalings(0.6, -0.1, torch.float64)
    assert left.shape == right.shape == (7, 1)
    assert torch.equal(left[:, 0], degree_scaling(deg[order], -0.1, torch.float64))
    assert torch.equal(right[:, 0], degree_scaling(deg[order], 0.6, torch.float64))
    assert graph.scalings(0.6, -0.1, torch.float64)[0] is left  # built once


BAD_OPTIONS = [
    (dict(norm_left=1.5), ValueError, r"norm_left must be a finite number in \[-1.0, 1.0\]"),
    (dict(norm_right=-2.0), ValueError, "norm_right"),
    (dict(norm_right=math.nan), ValueError, "norm_right"),
    (dict(norm_left="0.6"), TypeError, "norm_left"),
    (dict(layer_norm=1), TypeError, "layer_norm must be a bool"),
]


@pytest.mark.parametrize("changes, error, match", BAD_OPTIONS)
def test_bad_options_name_the_argument(changes, error, match):
    adj = normalized_adjacency([0, 1], [1, 0], 2, 2)
    with pytest.raises(error, match=match):
        propagate(adj, torch.zeros(4, 2), 2, **changes)


# ---------------------------------------------------------------------------------------
# Config and preset
# ---------------------------------------------------------------------------------------


def test_defaults_are_plain_lightgcn_and_the_preset_is_the_papers():
    cfg = Config().validate()
    assert (cfg.norm_left, cfg.norm_right, cfg.layer_norm) == (0.5, 0.5, False)
    pp = preset("lightgcnpp")
    assert (pp.norm_left, pp.norm_right, pp.layer_norm, pp.num_layers) == (0.6, -0.1, True, 3)
    assert pp.alpha == pytest.approx((0.2, 0.8 / 3, 0.8 / 3, 0.8 / 3)) and sum(pp.alpha) == 1
    assert Config.from_dict(pp.to_dict()) == pp
    # Another K keeps gamma = 0.2 unless alpha is given too.
    assert preset("lightgcnpp", num_layers=2).alpha == (0.2, 0.4, 0.4)
    assert preset("lightgcnpp", num_layers=2, alpha=(1, 0, 0)).alpha == (1.0, 0.0, 0.0)
    assert gamma_weights(0) == (1.0,) and PRESETS["default"] == Config()


@pytest.mark.parametrize("changes, error, match", BAD_OPTIONS)
def test_bad_config_values_name_the_field(changes, error, match):
    with pytest.raises(error, match=match):
        Config(**changes).validate()


def test_configs_written_before_the_options_load_with_plain_defaults():
    old = {k: v for k, v in Config(embedding_dim=8).to_dict().items() if k not in NEW_FIELDS}
    cfg = Config.from_dict(old)
    assert cfg == Config(embedding_dim=8).validate() and cfg.norm_left == 0.5


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


def pp_config(**changes) -> Config:
    return preset("lightgcnpp", **small_config(**changes))


class TestLightGCNpp(RecommenderBaseTestMixin):
    """The recommender contract (recommend, fold-in, similarity, save/load) with LightGCN++."""

    def make_model(self) -> LightGCN:
        return LightGCN(pp_config(node_order="degree"), device=self.device)

    def test_config_survives_save_and_load(self, fitted, tmp_path):
        loaded = LightGCN.load(fitted.save(tmp_path / "pp.npz"))
        assert loaded.config == fitted.config and loaded.config.layer_norm is True
        assert "norm_left=0.6, norm_right=-0.1, layer_norm=True" in repr(loaded)

    def test_factors_are_the_dense_reference(self, fitted, planted):
        g = Graph(*planted.train.shape, *map(np.asarray, planted.train.nonzero()))
        cfg = fitted.config
        x0 = fitted.embedding_.detach().double().numpy()
        expected, _, _ = dense_lightgcnpp(g, x0, cfg.alpha, cfg.norm_left, cfg.norm_right, True)
        u = planted.train.shape[0]
        np.testing.assert_allclose(fitted.user_factors, expected[:u], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fitted.item_factors, expected[u:], rtol=1e-4, atol=1e-5)

    def test_fold_in_follows_the_normalization(self, fitted, planted):
        num_users, num_items = planted.train.shape
        liked = sp.csr_matrix(np.eye(1, num_items, 5) + np.eye(1, num_items, 31))
        items = fitted.item_factors.astype(np.float64)  # (I, d)
        unit = items / np.linalg.norm(items, axis=1, keepdims=True)
        deg = np.asarray(planted.train.sum(0)).ravel()
        cfg = fitted.config
        expected = sum(2.0**-cfg.norm_left * (deg[i] + 1) ** -cfg.norm_right * unit[i]
                       for i in (5, 31))  # fmt: skip
        np.testing.assert_allclose(fitted.recalculate_user(0, liked), expected, rtol=1e-5)
        users = fitted.user_factors.astype(np.float64)
        unit = users / np.linalg.norm(users, axis=1, keepdims=True)
        udeg = np.asarray(planted.train.sum(1)).ravel()
        item = fitted.recalculate_item(0, sp.csr_matrix(np.eye(1, num_users, 7)))
        want = 1.0**-cfg.norm_left * (udeg[7] + 1) ** -cfg.norm_right * unit[7]  # |L_i| = 1
        np.testing.assert_allclose(item, want, rtol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
class TestLightGCNppCuda(RecommenderBaseTestMixin):
    device = "cuda"

    def make_model(self) -> LightGCN:
        return LightGCN(pp_config(), device=self.device)


def test_preset_trains_loss_falls(planted):
    model = LightGCN(pp_config(epochs=8)).fit(planted.train, show_progress=False)
    losses = [r["loss"] for r in model.history_]
    assert len(losses) == 8 and losses[-1] < 0.7 * losses[0]
    assert all(math.isfinite(v) for v in losses)


def test_plain_model_repr_is_unchanged():
    text = "LightGCN(embedding_dim=64, num_layers=1, alpha=[0.5, 0.5])"
    assert repr(LightGCN(num_layers=1)) == repr(LightGCN(num_layers=1, norm_left=0.5)) == text


def strip_new_fields(path, out):
    """A copy of the file at ``path`` whose config lacks the LightGCN++ fields, as files
    written before they existed do."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    cfg = {k: v for k, v in json.loads(str(arrays["config"])).items() if k not in NEW_FIELDS}
    np.savez(out, **dict(arrays, config=np.array(json.dumps(cfg))))
    return out


def test_model_saved_before_the_options_loads_as_plain(planted, tmp_path):
    model = LightGCN(**small_config(epochs=2)).fit(planted.train, show_progress=False)
    old = strip_new_fields(model.save(tmp_path / "new.npz"), tmp_path / "old.npz")
    loaded = LightGCN.load(old)
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)


def test_lightgcnpp_resumes_bit_for_bit_and_files_are_told_apart(planted, tmp_path):
    cfg = pp_config(epochs=4, batch_size=64)
    full = LightGCN(cfg).fit(planted.train, show_progress=False)
    ckpt = tmp_path / "ckpt.npz"
    steps = full.config.steps_per_epoch(planted.train.nnz)
    crash = interrupted_after(2 * steps + steps // 2)  # in the middle of epoch 3
    with pytest.raises(Interrupted):
        LightGCN(cfg).fit(planted.train, show_progress=False, checkpoint_path=ckpt,
                          checkpoint_every=1, callback=crash)  # fmt: skip
    resumed = LightGCN(cfg).fit(planted.train, show_progress=False, resume=ckpt)
    assert torch.equal(resumed.embedding_, full.embedding_)
    assert resumed.history_ == full.history_
    # A plain run must not continue a LightGCN++ checkpoint, nor the other way round.
    with pytest.raises(CheckpointError, match="layer_norm=True .now False."):
        LightGCN(**small_config(epochs=4, batch_size=64)).fit(planted.train, resume=ckpt)
    # A plain checkpoint written before the options existed resumes in a plain run.
    plain = small_config(epochs=3, batch_size=64)
    LightGCN(**plain).fit(planted.train, show_progress=False, checkpoint_path=ckpt,
                          checkpoint_every=1)  # fmt: skip
    old = strip_new_fields(ckpt, tmp_path / "old-ckpt.npz")
    again = LightGCN(**dict(plain, epochs=4)).fit(planted.train, show_progress=False, resume=old)
    assert len(again.history_) == 4
    with pytest.raises(CheckpointError, match="norm_left=0.5 .now 0.6."):
        LightGCN(pp_config(epochs=4, batch_size=64)).fit(planted.train, resume=old)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def test_cli_refuses_a_bad_option_naming_it():
    from lightgcn_sparse.cli import main

    result = CliRunner().invoke(main, ["train", "--norm-left", "3", "--no-download"])
    assert result.exit_code == 2 and "'--norm-left'" in result.output
    assert "norm_left must be a finite number" in result.output


@pytest.mark.slow
def test_cli_trains_the_preset_with_overrides(tmp_path):
    from lightgcn_sparse.cli import main
    from lightgcn_sparse.data import load_dataset

    try:
        load_dataset("ml-100k", download=False)
    except FileNotFoundError as err:  # pragma: no cover - recbole is a test dependency here
        pytest.skip(f"ml-100k not available offline: {err}")
    metrics = tmp_path / "metrics.json"
    args = ["train", "--preset", "lightgcnpp", "--norm-right", "0", "--num-layers", "2",
            "--epochs", "1", "--batches-per-epoch", "2", "--embedding-dim", "8", "--quiet",
            "--out", str(tmp_path / "run"), "--metrics-json", str(metrics)]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    cfg = json.loads(metrics.read_text())["config"]
    assert (cfg["norm_left"], cfg["norm_right"], cfg["layer_norm"]) == (0.6, 0.0, True)
    assert cfg["alpha"] == [0.2, 0.4, 0.4]
