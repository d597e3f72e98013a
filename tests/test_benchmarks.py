"""Smoke tests of the benchmarks: each runs on a tiny graph in seconds and writes its JSON.

No timing is asserted: only that each benchmark runs, checks correctness, and reports the
expected keys. The benchmarks live outside the package, in ``benchmarks/`` at the root.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

graphs = importlib.import_module("benchmarks.graphs")
hardware = importlib.import_module("benchmarks.hardware")
timing = importlib.import_module("benchmarks.timing")
bench_propagate = importlib.import_module("benchmarks.propagate")
bench_sampler = importlib.import_module("benchmarks.sampler")
bench_memory = importlib.import_module("benchmarks.memory")
bench_train = importlib.import_module("benchmarks.train")
bench_floor = importlib.import_module("benchmarks.floor")

TINY_PROPAGATE = [
    "--no-ml100k", "--edges", "2000", "--hub-edges", "3000", "--dim", "8", "--layers", "2",
    "--min-run-time", "0", "--triad-mib", "4",
]  # fmt: skip


def invoke(main, args: list[str]) -> tuple[str, dict]:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    json_path = args[args.index("--json") + 1]
    return result.output, json.loads(Path(json_path).read_text())


# --- graphs ----------------------------------------------------------------------------


def test_powerlaw_bipartite_distinct_and_deterministic():
    u, i = graphs.powerlaw_bipartite(50, 40, 500, seed=3)
    assert u.size == i.size == 500
    assert 0 <= u.min() and u.max() < 50 and 0 <= i.min() and i.max() < 40
    assert np.unique(u * 40 + i).size == 500  # deduplicated
    u2, i2 = graphs.powerlaw_bipartite(50, 40, 500, seed=3)
    assert np.array_equal(u, u2) and np.array_equal(i, i2)
    with pytest.raises(ValueError, match="at most half"):
        graphs.powerlaw_bipartite(10, 10, 60)


def test_powerlaw_items_are_skewed():
    _, i = graphs.powerlaw_bipartite(2000, 500, 20_000, seed=0)
    deg = np.sort(np.bincount(i, minlength=500))[::-1]
    assert deg[:50].sum() > 2 * deg[-250:].sum()  # head items far more popular than the tail


@pytest.mark.parametrize("items,edges,hub", [(20, 100, 20), (200, 5000, 300), (7, 7, 1)])
def test_pareto_degrees_sum_exactly_with_a_plateau_of_hubs(items, edges, hub):
    deg = graphs.pareto_degrees(items, edges, hub)
    assert deg.sum() == edges and deg.min() >= 1 and deg.max() <= hub
    assert np.all(np.diff(deg) <= 1)  # non-increasing up to the rounding fix-up
    with pytest.raises(ValueError, match="need items <= edges"):
        graphs.pareto_degrees(10, 5, 3)


def test_hub_graph_has_its_shape_exact_degrees_and_distinct_pairs():
    nu, ni, hub = graphs.hub_shape(1_000_000)
    assert (nu, ni, hub) == (100_000, 20_000, 20_000)
    nu, ni, hub = graphs.hub_shape(20_000)
    u, i = graphs.hub_bipartite(nu, ni, 20_000, hub, seed=1)
    assert u.size == 20_000 and np.unique(u * ni + i).size == 20_000
    deg = np.bincount(i, minlength=ni)
    assert sorted(deg) == sorted(graphs.pareto_degrees(ni, 20_000, hub))
    assert np.sort(deg)[-5:].tolist() == [hub] * 5  # the head is a plateau of hubs
    assert np.all(np.diff(u) >= 0)  # user-major
    u2, i2 = graphs.hub_bipartite(nu, ni, 20_000, hub, seed=1)
    assert np.array_equal(u, u2) and np.array_equal(i, i2)


def test_ml100k_comes_from_the_package_loader(monkeypatch):
    real = graphs.load_ml100k()
    assert (real.num_users, real.num_items, real.num_edges) == (943, 1682, 100_000)

    def missing(*args, **kwargs):
        raise graphs.DatasetNotFoundError("no ml-100k here", [])

    monkeypatch.setattr(graphs, "load_dataset", missing)
    fallback = graphs.load_ml100k()
    assert "synthetic" in fallback.source and fallback.num_edges == 100_000


def test_close_uses_dtype_tolerance():
    ref = torch.randn(10, 4, dtype=torch.float64)
    ok, err = timing.close(ref + 1e-7, ref, torch.float32)
    assert ok and err < 1e-5
    ok, _ = timing.close(ref * 1.01, ref, torch.float32)
    assert not ok
    ok, _ = timing.close(ref * 1.01, ref, torch.bfloat16)
    assert ok


def test_every_benchmark_shares_the_run_options():
    for main in (bench_propagate.main, bench_sampler.main, bench_memory.main, bench_train.main):
        names = {p.name for p in main.params}
        assert {"device", "threads", "seed", "json_path"} <= names, main.name


# --- propagate -------------------------------------------------------------------------


def test_propagate_smoke(tmp_path):
    out_json = tmp_path / "p.json"
    output, data = invoke(bench_propagate.main, TINY_PROPAGATE + ["--json", str(out_json)])
    assert "ours[embedding_bag]" in output and "triad" in output and "Levers" in output
    assert data["benchmark"] == "propagate"
    for key in ("hardware", "config", "byte_model", "triad", "graphs", "targets", "notes"):
        assert key in data
    assert data["hardware"]["torch"] == torch.__version__
    assert "load_after" in data["hardware"] and data["triad"]["gbps"] > 0
    power, hubs = data["graphs"]
    assert power["edges"] == 2000 and power["nnz"] == 4000
    cont = power["contenders"]
    for name in ("ours[embedding_bag]", "ours[sparse_mm]", "torch CSR sparse.mm autograd",
                 "torch CSR sparse.mm x2 (products only)", "torch COO sparse.mm autograd",
                 "scipy CSR @ dense (fwd only)", "PyG LightGCN.get_embedding"):  # fmt: skip
        assert name in cont
    for name in ("ours[embedding_bag]", "ours[sparse_mm]", "torch CSR sparse.mm autograd"):
        for phase in ("fwd", "fwd+bwd"):
            res = cont[name][phase]
            assert res["status"] == "ok", (name, phase, res)
            for key in ("median_s", "iqr_s", "runs", "gbps", "vs_ours", "max_rel_err"):
                assert key in res
            assert "peak_bytes" in res and res["max_rel_err"] < 1e-5
    assert cont["torch CSR sparse.mm x2 (products only)"]["fwd"]["status"] == "ok"
    assert cont["scipy CSR @ dense (fwd only)"]["fwd+bwd"]["status"] == "n/a"
    assert cont["ours[embedding_bag]"]["fwd"]["vs_ours"] == pytest.approx(1.0)

    levers = power["levers"]
    assert len(levers) == 6
    bounds = {("float32", "none"): 1e-5, ("bfloat16", "none"): 5e-2, ("float16", "none"): 1e-2,
              ("float32", "degree"): 1e-5, ("float32", "rcm"): 1e-5,
              ("float32", "balanced"): 1e-5}  # fmt: skip
    for (dtype, order), bound in bounds.items():
        row = levers[f"ours[{dtype}, order {order}]"]
        assert row["lever"] == {"dtype": dtype, "order": order}
        for phase in ("fwd", "fwd+bwd"):
            assert row[phase]["status"] == "ok" and row[phase]["max_rel_err"] < bound
    assert set(power["node_order_build_s"]) == {"degree", "rcm", "balanced"}

    assert hubs["graph"] == "hubs-3k" and (hubs["users"], hubs["items"]) == (300, 60)
    assert hubs["top5_item_degrees"] == [60] * 5
    hub_targets = [t for t in data["targets"] if t["graph"] == "hubs-3k"]
    assert [t["goal"] for t in hub_targets] == [1.0, 5.0]


def test_propagate_reports_wrong_contender_untimed(tmp_path, monkeypatch):
    real = bench_propagate.make_contenders

    def with_a_wrong_one(*args, **kwargs):
        out = real(*args, **kwargs)
        x = args[2]
        out.append(bench_propagate.Contender("wrong", lambda: 2 * x, lambda: -x))
        return out

    monkeypatch.setattr(bench_propagate, "make_contenders", with_a_wrong_one)
    out_json = tmp_path / "p.json"
    args = TINY_PROPAGATE + ["--no-hubs", "--no-levers", "--no-memory", "--json", str(out_json)]
    output, data = invoke(bench_propagate.main, args)
    wrong = data["graphs"][0]["contenders"]["wrong"]
    for phase in ("fwd", "fwd+bwd"):
        assert wrong[phase]["status"] == "WRONG"
        assert "median_s" not in wrong[phase]
    assert "WRONG" in output and data["graphs"][0]["levers"] == {}


def test_propagate_skips_pyg_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "pyg_available", lambda: (False, "no PyG here: skipped."))
    out_json = tmp_path / "p.json"
    args = TINY_PROPAGATE + ["--no-hubs", "--no-levers", "--no-memory", "--json", str(out_json)]
    output, data = invoke(bench_propagate.main, args)
    assert "note: no PyG here: skipped." in output
    pyg = data["graphs"][0]["contenders"]["PyG LightGCN.get_embedding"]
    assert pyg["fwd"]["status"] == "n/a"


def test_propagate_ml100k_shape(tmp_path):
    out_json = tmp_path / "p.json"
    args = ["--synthetic", "--edges", "0", "--no-hubs", "--no-levers", "--dim", "4",
            "--layers", "1", "--min-run-time", "0", "--triad-mib", "4", "--no-memory",
            "--pyg-max-edges", "0", "--json", str(out_json)]  # fmt: skip
    _, data = invoke(bench_propagate.main, args)
    (ml,) = data["graphs"]
    assert (ml["graph"], ml["users"], ml["items"], ml["edges"]) == ("ml-100k", 943, 1682, 100_000)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error path")
def test_propagate_cuda_absent_is_one_clear_line():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.propagate", "--device", "cuda", "--no-ml100k"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "CUDA is not available" in lines[0], proc.stderr


# --- sampler, memory -------------------------------------------------------------------


def test_sampler_smoke(tmp_path):
    out_json = tmp_path / "s.json"
    args = ["--no-ml100k", "--edges", "3000", "--python-samples", "500", "--min-run-time", "0",
            "--json", str(out_json)]  # fmt: skip
    output, data = invoke(bench_sampler.main, args)
    assert data["benchmark"] == "sampler"
    (graph,) = data["graphs"]
    ours = graph["contenders"]["ours BPRSampler.negatives"]
    for key in ("samples_per_call", "median_s", "iqr_s", "samples_per_s", "ours_speedup"):
        assert key in ours
    assert ours["frac_positive"] == 0.0 and ours["frac_not_item"] == 0.0
    loop = graph["contenders"]["Python loop + set (rejection)"]
    assert loop["samples_per_call"] == 500 and loop["frac_positive"] == 0.0
    assert "PyG structured_negative_sampling" in graph["contenders"]
    assert "samples/s" in output


def test_memory_smoke(tmp_path):
    out_json = tmp_path / "m.json"
    args = ["--edges", "3000", "--steps", "1", "--dim", "8", "--json", str(out_json)]
    output, data = invoke(bench_memory.main, args)
    assert data["benchmark"] == "memory"
    (graph,) = data["graphs"]
    assert "error" not in graph, graph
    assert set(bench_memory.STAGES) <= set(graph["stages"])
    for name in bench_memory.STAGES:
        stage = graph["stages"][name]
        assert stage["seconds"] >= 0 and stage["ru_maxrss"] > 0
    for batch in (2048, 65536):
        step = graph["stages"][f"step@{batch}"]
        assert step["epoch_steps"] == -(-graph["train_edges"] // batch)
        assert step["epoch_s"] == pytest.approx(step["epoch_steps"] * step["step_s"])
    assert graph["stages"]["evaluate"]["users"] > 0
    assert graph["ru_maxrss"] > 0
    assert "evaluate" in output


# --- train -----------------------------------------------------------------------------


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    rows = [(u, i) for u in range(60) for i in rng.choice(40, 12, replace=False)]
    csv = tmp_path / "tiny.csv"
    csv.write_text("".join(f"{u},{i}\n" for u, i in rows))
    return csv


TINY_TRAIN = ["--epochs", "2", "--timing-epochs", "2", "--profile-steps", "2",
              "--batch-size", "64", "--min-run-time", "0"]  # fmt: skip


def test_train_benchmark_smoke(tmp_path, tiny_csv):
    out = tmp_path / "train.json"
    args = ["--dataset", str(tiny_csv), *TINY_TRAIN, "--propagation-dtype", "float32",
            "--propagation-dtype", "bfloat16", "--node-order", "none", "--node-order", "degree",
            "--json", str(out)]  # fmt: skip
    text, data = invoke(bench_train.main, args)
    assert "lightgcn-sparse" in text and "popularity" in text and "step / propagation" in text
    (entry,) = data["datasets"]
    assert entry["split"] == "random" and entry["train"] + entry["valid"] + entry["test"] == 720
    runs = entry["runs"]
    levers = [(r["propagation_dtype"], r["node_order"]) for r in runs]
    assert levers == [("float32", "none"), ("float32", "degree"), ("bfloat16", "none"),
                      ("bfloat16", "degree")]  # fmt: skip
    for r in runs:
        assert len(r["epoch_seconds"]) == 2 and r["steps_per_epoch"] == -(-entry["train"] // 64)
        assert r["steps_per_s"] == pytest.approx(r["steps_per_epoch"] / r["epoch_s"])
        assert 0.0 < r["propagation_share"] <= 1.0 and r["profiled_steps"] == 2
        assert r["step_over_propagation"] == pytest.approx(r["step_s"] / r["propagation_fwd_bwd_s"])
        parts = r["profiled_breakdown_s"]  # "other" is the wall time less the three others
        assert 0.0 < parts["products"] and parts["optimizer"] > 0.0 and parts["other"] >= 0.0
        assert parts["products"] + parts["propagation_other"] == pytest.approx(
            r["propagation_share"] * r["profiled_step_s"]
        )
    table = text.split("products share")[1].split("Quality")[0]
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == len(runs)
    (q,) = data["quality"]
    assert q["epochs_run"] == 2 and q["config"]["propagation_dtype"] == "float32"
    for key in ("recall@20", "ndcg@20", "precision@10", "map@10"):
        assert 0.0 <= q["lightgcn_sparse"][key] <= 1.0
        assert 0.0 <= q["popularity"][key] <= 1.0
    assert "recbole" not in q  # only with --compare-recbole


@pytest.mark.parametrize("kernel", ["embedding_bag", "sparse_mm"])
@pytest.mark.parametrize("batch", [8, 64])  # 3B <= N/2: the batch-rows step; else the full one
def test_step_breakdown_counts_the_propagations_products_only(kernel, batch):
    """Each kernel's products are found inside the propagation (both CPU step paths), and
    the loss's own embedding_bag (its backward into the table) is not counted as one."""
    import scipy.sparse as sp

    from lightgcn_sparse import LightGCN
    from lightgcn_sparse.config import preset

    m = sp.random(60, 40, density=0.2, format="csr", random_state=0)
    m.data[:] = 1.0
    prof = bench_train._StepProfile(2, 1, torch.device("cpu"))
    cfg = preset("recbole", epochs=1, batches_per_epoch=3, batch_size=batch, kernel=kernel)
    model = LightGCN(cfg).fit(m, show_progress=False, callback=prof)
    assert model._batch_rows_only() == (batch == 8)
    events = prof.profiler.events()
    ours = [e for e in events if e.name in bench_train.PRODUCT_OPS and bench_train._inside(e)]
    assert len(ours) == 6  # K = 3 forward (the last at the batch's rows on that path), 3 back
    bags = [e for e in events if e.name == "aten::embedding_bag"]
    loss_bags = [e for e in bags if not bench_train._inside(e)]
    assert len(loss_bags) == 1  # bpr_loss_indexed's backward
    parts = prof.breakdown()
    assert parts["products"] == pytest.approx(sum(e.cpu_time_total for e in ours) / 1e6)


def test_train_uses_the_shipped_split_and_skips_missing_data(tmp_path):
    folder = tmp_path / "bench"
    folder.mkdir()
    rng = np.random.default_rng(1)
    lines = {part: [] for part in ("train", "test")}
    for u in range(30):
        items = rng.choice(25, 8, replace=False)
        lines["train"].append(" ".join(map(str, [u, *items[:6]])))
        lines["test"].append(" ".join(map(str, [u, *items[6:]])))
    for part, text in lines.items():
        (folder / f"{part}.txt").write_text("\n".join(text) + "\n")
    out = tmp_path / "train.json"
    args = ["--dataset", str(folder), "--dataset", str(tmp_path / "nowhere"), *TINY_TRAIN,
            "--json", str(out)]  # fmt: skip
    text, data = invoke(bench_train.main, args)
    (entry,) = data["datasets"]
    assert (entry["split"], entry["train"], entry["valid"], entry["test"]) == ("given", 180, 0, 60)
    assert data["quality"] == []  # no validation part: no quality run
    assert any("nowhere" in note and "skipped" in note for note in data["notes"])
    # --protocol paper adds the metric curve: test every --eval-every epochs, best kept.
    args = ["--dataset", str(folder), *TINY_TRAIN, "--protocol", "paper", "--eval-every", "1",
            "--json", str(out)]  # fmt: skip
    text, data = invoke(bench_train.main, args)
    assert "Metric curve every 1 epochs (paper protocol" in text
    (c,) = data["curves"]
    assert c["protocol"] == "paper" and [q["epoch"] for q in c["points"]] == [1, 2]
    best = max(c["points"], key=lambda q: q["recall@20"])
    assert c["test"]["recall@20"] == pytest.approx(best["recall@20"])


def test_compare_recbole_writes_nothing_to_the_working_directory(tmp_path, tiny_csv, monkeypatch):
    seen = {}

    def fake_run_recbole(model, dataset, config_dict):
        for folder in ("log", "log_tensorboard", "saved"):  # what RecBole writes to ./
            Path(folder).mkdir()
            (Path(folder) / "run.log").write_text("x")
        seen["cwd"] = Path.cwd()
        seen["files"] = sorted(p.name for p in (Path(config_dict["data_path"]) / dataset).iterdir())
        return {"test_result": {"recall@10": 0.5, "ndcg@20": 0.25}}

    quick_start = types.ModuleType("recbole.quick_start")
    quick_start.run_recbole = fake_run_recbole
    monkeypatch.setitem(sys.modules, "recbole", types.ModuleType("recbole"))
    monkeypatch.setitem(sys.modules, "recbole.quick_start", quick_start)
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    out = tmp_path / "train.json"
    args = ["--dataset", str(tiny_csv), *TINY_TRAIN, "--compare-recbole", "--json", str(out)]
    text, data = invoke(bench_train.main, args)
    assert list(repo.iterdir()) == [] and Path.cwd() == repo
    assert seen["cwd"] != repo and not seen["cwd"].exists()  # a temporary folder, removed
    assert seen["files"] == ["lgs.test.inter", "lgs.train.inter", "lgs.valid.inter"]
    assert data["quality"][0]["recbole"]["test"] == {"recall@10": 0.5, "ndcg@20": 0.25}
    assert "RecBole LightGCN" in text


@pytest.mark.parametrize("batch", [8, 64])  # 3B <= N/2: the batch-rows step; else the full one
def test_floor_smoke(tmp_path, tiny_csv, batch):
    out = tmp_path / "floor.json"
    args = ["--dataset", str(tiny_csv), "--dataset", str(tmp_path / "nowhere"),
            "--batch-size", str(batch), "--rounds", "2", "--steps", "2", "--threads", "1",
            "--json", str(out)]  # fmt: skip
    text, data = invoke(bench_floor.main, args)
    assert "floor ratio" in text
    assert any("nowhere" in note and "skipped" in note for note in data["notes"])
    (entry,) = data["datasets"]
    assert [lv["propagation_dtype"] for lv in entry["levers"]] == ["float32", "bfloat16"]
    for lv in entry["levers"]:
        assert lv["rows_path"] == (batch == 8)
        assert len(lv["rounds"]["step"]) == len(lv["rounds"]["floor"]) == 2
        assert lv["floor_s"] > 0.0 and lv["step_s"] > 0.0
    assert entry["levers"][0]["step_ratio"] == 1.0 == entry["levers"][0]["floor_ratio"]


def test_floor_settles_the_row_split_in_real_steps(tmp_path, tiny_csv, monkeypatch):
    """With two threads and a trial under way, the floor benchmark runs real steps until
    each dtype's split is chosen, and names the choice in its JSON."""
    from lightgcn_sparse import graph as graph_module

    monkeypatch.setattr(graph_module, "SPLIT_MIN_NNZ", 0)
    out = tmp_path / "floor.json"
    args = ["--dataset", str(tiny_csv), "--batch-size", "8", "--rounds", "1", "--steps", "1",
            "--threads", "2", "--json", str(out)]  # fmt: skip
    _, data = invoke(bench_floor.main, args)
    (entry,) = data["datasets"]
    for lv in entry["levers"]:
        key = str((2, getattr(torch, lv["propagation_dtype"]), 64))
        assert lv["row_split"][key] is None or lv["row_split"][key][0] in ("two", "padded")
        assert key in lv["row_split"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("batch", [8, 64])
def test_floor_computes_the_steps_propagation_and_its_check_can_fail(tiny_csv, dtype, batch,
                                                                     monkeypatch):  # fmt: skip
    """The floor's forward and gradient are the propagation's, bit for bit; a floor whose
    forward or backward computes something else is caught before anything is timed."""
    from lightgcn_sparse.config import preset

    _, split, _ = bench_train.load(str(tiny_csv), None, 0)
    cfg = preset("recbole", batch_size=batch, propagation_dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    users = torch.randint(0, split.train.num_users, (batch,), generator=gen)
    items = torch.randint(0, split.train.num_items, (2, batch), generator=gen)
    lever = bench_floor.prepare(split, cfg, [(users, items[0], items[1])], 0)  # checks
    assert lever.rows_path == (batch == 8)
    grad = bench_floor.floor_step(lever, lever.floor_inputs[0])
    assert grad.shape == lever.model.embedding_.shape and bool(grad.abs().sum() > 0)
    if lever.rows_path:  # a wrong rows' CSR (another batch's rows) is caught
        at, sub, g = lever.floor_inputs[0]
        wrong = lever.model.graph_.rows_csr(at.flip(0), sub[2].dtype)
        with pytest.raises(AssertionError, match="forward differs"):
            bench_floor.check_floor(lever, (at, wrong, g))
    real_forward = bench_floor.floor_forward
    with monkeypatch.context() as patch:  # a forward with one product too many is caught
        patch.setattr(bench_floor, "floor_forward",
                      lambda lv, x, inputs: real_forward(lv, lv.model.graph_.matmul(x), inputs))
        with pytest.raises(AssertionError, match="forward differs"):
            bench_floor.check_floor(lever, lever.floor_inputs[0])
    real_backward = bench_floor.floor_backward

    def short(lv, inputs):  # a backward without layer 1's term (full path) or halved
        graph, dtype, kernel, weights = bench_floor._setting(lv)
        if not lv.rows_path:
            return real_backward(lv, inputs) - graph.matmul(inputs[0]) * weights[1]
        return real_backward(lv, inputs) * 0.5

    monkeypatch.setattr(bench_floor, "floor_backward", short)
    with pytest.raises(AssertionError, match="gradient differs"):
        bench_floor.check_floor(lever, lever.floor_inputs[0])
