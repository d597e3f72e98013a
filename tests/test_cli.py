"""The command line on real MovieLens-100K (the copy bundled with recbole), trained once.

Training is cut to a couple of tiny epochs: these tests check the commands' wiring and
outputs, not the model's quality.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lightgcn_sparse.cli import main
from lightgcn_sparse.data import load_dataset
from lightgcn_sparse.model import LightGCN

pytestmark = pytest.mark.slow

TRAIN_ARGS = [
    "--epochs", "2", "--batches-per-epoch", "3", "--batch-size", "1024",
    "--embedding-dim", "16", "--num-layers", "2", "--seed", "3", "--quiet",
]  # fmt: skip


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def table_items(output: str) -> list[str]:
    """Raw item ids of a printed recommendation table (rank, item, title, ...)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("rank")) + 1
    return [line.split()[1] for line in lines[start:] if line.strip()]


@pytest.fixture(scope="module")
def ml100k():
    try:
        return load_dataset("ml-100k", download=False)
    except FileNotFoundError as err:  # pragma: no cover - recbole is a test dependency here
        pytest.skip(f"ml-100k not available offline: {err}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ml100k):
    out = tmp_path_factory.mktemp("cli") / "run"
    metrics = out.parent / "metrics-out.json"
    result = run("train", *TRAIN_ARGS, "--out", str(out), "--metrics-json", str(metrics))
    return out, metrics, result.output


def test_train_writes_model_history_and_metrics(trained):
    out, metrics_path, output = trained
    assert (out / "model.npz").is_file()
    assert (out / "history.csv").is_file() and (out / "history.json").is_file()
    metrics = json.loads(metrics_path.read_text())
    for key in ("recall@20", "ndcg@20", "precision@10", "map@10"):
        assert 0.0 <= metrics[key] <= 1.0, key
        assert 0.0 <= metrics["baseline"][key] <= 1.0
    assert metrics["users"] == 943
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] in (1, 2)
    assert metrics["config"]["embedding_dim"] == 16
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert "test at the epoch chosen on validation: epoch" in output
    assert "(honest protocol)" in output and "Recall@20" in output and "saved" in output
    assert metrics["protocol"] == "honest" and metrics["selected_on"] == "validation"
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    assert all("loss" in r and "val_loss" in r for r in history)


def test_evaluate_reproduces_the_training_metrics(trained, tmp_path):
    out, metrics_path, _ = trained
    again = tmp_path / "eval.json"
    result = run("evaluate", "--model", str(out / "model.npz"), "--metrics-json", str(again))
    assert "LightGCN" in result.output and "Popularity" in result.output
    first, second = json.loads(metrics_path.read_text()), json.loads(again.read_text())
    for key in ("recall@20", "ndcg@20", "precision@10", "map@10"):
        assert second[key] == pytest.approx(first[key], abs=1e-12)


def test_refit_protocol_trains_twice_and_evaluates_as_trained(tmp_path, ml100k):
    out = tmp_path / "refit"
    args = [a if a != "--quiet" else "--eval-every" for a in TRAIN_ARGS] + ["1"]
    result = run("train", *args, "--protocol", "refit", "--out", str(out))
    assert "after refitting on train + valid for" in result.output
    assert "refit protocol" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "refit" and metrics["selected_on"] == "validation"
    chosen = metrics["config"]["extra"]["refit"]["epochs"]
    assert metrics["epochs_run"] == chosen == metrics["config"]["epochs"]
    assert metrics["users"] == 943
    again = run("evaluate", "--model", str(out / "model.npz"), "--metrics-json",
                str(tmp_path / "again.json"))  # fmt: skip
    assert "(refit protocol)" in again.output
    second = json.loads((tmp_path / "again.json").read_text())
    for key in ("recall@20", "ndcg@20"):
        assert second[key] == pytest.approx(metrics[key], abs=1e-12)
        assert second["baseline"][key] == pytest.approx(metrics["baseline"][key], abs=1e-12)


def test_recommend_for_a_known_user(trained, ml100k):
    out, _, _ = trained
    result = run("recommend", "--model", str(out / "model.npz"), "--user", "196", "-k", "5")
    assert "Top 5 movies for user 196 (training movies excluded):" in result.output
    shown = table_items(result.output)
    model = LightGCN.load(out / "model.npz")
    ids, _ = model.recommend(ml100k.user_index(196), N=5)
    assert shown == [str(ml100k.item_ids[i]) for i in ids]
    user = ml100k.user_index(196)
    lo, hi = int(model.train_.indptr[user]), int(model.train_.indptr[user + 1])
    trained_on = set(model.train_.indices[lo:hi].tolist())
    assert not trained_on & {ml100k.item_index(int(raw)) for raw in shown}
    assert len(shown) == 5


def test_recommend_for_a_new_user_by_titles(trained, ml100k):
    out, _, _ = trained
    model = str(out / "model.npz")
    result = run("recommend", "--model", model, "--likes", "star wars", "--likes", "FARGO")
    assert "likes: Star Wars (1977); Fargo (1996)" in result.output
    shown = table_items(result.output)
    assert len(shown) == 10
    liked = {str(ml100k.item_ids[i]) for i in (49, 99)}  # Star Wars, Fargo
    assert not liked & set(shown)
    same = run("recommend", "--model", model, "--likes", "Star Wars", "--likes", "Fargo")
    assert table_items(same.output) == shown


@pytest.mark.parametrize(
    "title, expected",
    [
        ("Star Warz", ["No movie matches 'Star Warz'", "Did you mean", "'Star Wars (1977)'"]),
        ("Sabrina", ["matches several movies", "Sabrina (1995)", "Sabrina (1954)", "year"]),
    ],
)
def test_recommend_with_a_bad_title_lists_candidates(trained, title, expected):
    out, _, _ = trained
    result = run("recommend", "--model", str(out / "model.npz"), "--likes", title, code=1)
    assert [x.startswith("Error:") for x in result.output.splitlines()].count(True) == 1
    for text in expected:
        assert text in result.output


def test_similar_movies(trained):
    out, _, _ = trained
    result = run("similar", "--model", str(out / "model.npz"), "--movie", "star wars", "-k", "4")
    assert "Movies similar to Star Wars (1977) (4):" in result.output
    shown = table_items(result.output)
    assert len(shown) == 4 and "50" not in shown  # raw id 50 is Star Wars itself


def test_info_describes_the_dataset_and_split(ml100k):
    result = run("info", "--dataset", "ml-100k")
    text = result.output
    assert "users: 943" in text and "items: 1,682" in text
    line = next(x for x in text.splitlines() if "split random (honest protocol):" in x)
    counts = dict(part.split() for part in line.split(": ", 1)[1].split(" / "))
    counts = {k: int(v.replace(",", "")) for k, v in counts.items()}
    assert sum(counts.values()) == 100000 and counts["train"] > counts["test"] > 0


def test_version_and_help():
    assert "lightgcn-sparse" in run("--version").output
    for command in ("train", "evaluate", "recommend", "similar", "info"):
        assert "Usage:" in run(command, "--help").output
    assert np.all([c in run("--help").output for c in ("train", "similar", "info")])
