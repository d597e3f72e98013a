"""End-to-end on the real MovieLens 100K (the copy inside an installed recbole wheel)."""

import json

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


# ---------------------------------------------------------------- the refit protocol
def _small_data():
    """A random 60 x 40 interaction table (every user with 8 items) and its random split."""
    from lightgcn_sparse.data import Interactions

    rng = np.random.default_rng(5)
    users = np.repeat(np.arange(60), 8)
    items = np.concatenate([rng.choice(40, 8, replace=False) for _ in range(60)])
    table = Interactions(users, items, 60, 40, np.arange(60), np.arange(40))
    return table, DataSpec("small", split="random", protocol="refit").split_of(table)


REFIT_CFG = Config(embedding_dim=8, num_layers=2, batch_size=64, learning_rate=5e-2, epochs=14,
                   eval_every=2, patience=2, seed=3, metric="recall@20", ks=(20,))  # fmt: skip


def _embedding(model) -> np.ndarray:
    return model.embedding_.detach().cpu().numpy().copy()


def test_refit_trains_a_fresh_model_on_train_and_valid_for_the_epochs_validation_chose():
    from lightgcn_sparse.data.splits import fold_validation_into_train
    from lightgcn_sparse.model import LightGCN

    table, split = _small_data()
    assert split.valid.num_interactions > 0
    honest, _, _ = train(DataSpec("small", split="random"), REFIT_CFG, show_progress=False,
                         data=(table, split))  # fmt: skip
    chosen = honest.best_epoch_
    assert 0 < chosen < len(honest.history_)  # validation stopped it early: a real choice

    refit, _, trained_on = train(DataSpec("small", split="random", protocol="refit"), REFIT_CFG,
                                 show_progress=False, data=(table, split))  # fmt: skip
    choice = refit.config.extra["refit"]
    assert choice["epochs"] == chosen and choice["epochs_run"] == len(honest.history_)
    assert choice["metric"] == "recall@20"
    assert choice["validation_score"] == max(s for _, s in choice["validation_curve"])
    assert len(refit.history_) == chosen == refit.config.epochs
    folded = fold_validation_into_train(split)
    both = split.train.num_interactions + split.valid.num_interactions
    assert trained_on.train.num_interactions == both
    assert trained_on.valid.num_interactions == 0

    # exactly a fresh model trained on train + valid for the chosen epochs, nothing watched
    same = LightGCN(REFIT_CFG.replace(epochs=chosen))
    same.fit(folded.train.to_csr(), show_progress=False)
    np.testing.assert_array_equal(_embedding(refit), _embedding(same))
    assert not np.array_equal(_embedding(refit), _embedding(honest))


class _Interrupt:
    """A callback that raises KeyboardInterrupt at its ``at``-th epoch end (both phases)."""

    def __init__(self, at: int):
        self.at, self.seen = at, 0

    def __call__(self, record: dict) -> None:
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("phase", ["choosing", "refitting"])
def test_refit_resumes_from_a_checkpoint_of_either_phase(tmp_path, phase):
    table, split = _small_data()
    spec = DataSpec("small", split="random", protocol="refit")
    whole, _, _ = train(spec, REFIT_CFG, show_progress=False, data=(table, split))
    run_to_choose = whole.config.extra["refit"]["epochs_run"]
    stop_at = 3 if phase == "choosing" else run_to_choose + 3
    ckpt = tmp_path / "checkpoint.npz"
    with pytest.raises(KeyboardInterrupt):
        train(spec, REFIT_CFG, show_progress=False, data=(table, split), checkpoint_path=ckpt,
              checkpoint_every=2, callback=_Interrupt(stop_at))  # fmt: skip
    from lightgcn_sparse.resume import read_config

    assert ("refit" in read_config(ckpt).get("extra", {})) == (phase == "refitting")
    resumed, _, _ = train(spec, REFIT_CFG, show_progress=False, data=(table, split),
                          checkpoint_path=ckpt, checkpoint_every=2, resume=ckpt)  # fmt: skip
    np.testing.assert_array_equal(_embedding(resumed), _embedding(whole))
    assert resumed.config.extra["refit"] == whole.config.extra["refit"]


def test_refit_without_validation_data_is_refused():
    from lightgcn_sparse._checks import InvalidValue
    from lightgcn_sparse.data.splits import fold_validation_into_train

    table, split = _small_data()
    with pytest.raises(InvalidValue, match="'refit' chooses the epochs on validation data"):
        train(DataSpec("small", split="random", protocol="refit"), REFIT_CFG,
              show_progress=False, data=(table, fold_validation_into_train(split)))  # fmt: skip


def test_refit_resumes_after_a_choice_that_ran_every_epoch(tmp_path):
    """Validation never stopped the first phase, whose last checkpoint is at its last epoch:
    resuming from it goes straight to the refit phase (the CLI does not refuse it)."""
    from click.testing import CliRunner

    from lightgcn_sparse.cli import main

    folder = tmp_path / "bench"
    folder.mkdir()
    rng = np.random.default_rng(1)
    lines = {"train.txt": [], "test.txt": []}
    for u in range(30):
        items = rng.choice(25, 9, replace=False)
        lines["train.txt"].append(" ".join(map(str, [u, *items[:7]])))
        lines["test.txt"].append(" ".join(map(str, [u, *items[7:]])))
    for name, rows in lines.items():
        (folder / name).write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    args = ["train", "--dataset", str(folder), "--protocol", "refit", "--epochs", "4",
            "--eval-every", "1", "--patience", "0", "--checkpoint-every", "2",
            "--embedding-dim", "8", "--batch-size", "64", "--quiet", "--out", str(out)]  # fmt: skip
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    expected = json.loads((out / "metrics.json").read_text())
    assert expected["config"]["extra"]["refit"]["epochs_run"] == 4
    # the choice's checkpoint (written at its last epoch, 4 of 4) resumes into the refit
    from lightgcn_sparse.experiment import DataSpec as Spec
    from lightgcn_sparse.resume import read_config

    chooser = tmp_path / "chooser.npz"
    table, split = Spec(str(folder), protocol="refit").load()
    cfg = Config(embedding_dim=8, batch_size=64, epochs=4, eval_every=1, patience=0)
    with pytest.raises(KeyboardInterrupt):
        train(Spec(str(folder), protocol="refit"), cfg, show_progress=False, data=(table, split),
              checkpoint_path=chooser, checkpoint_every=2, callback=_Interrupt(5))  # fmt: skip
    assert "refit" not in read_config(chooser).get("extra", {})
    resume = ["--resume", str(chooser), "--overwrite"]  # out holds the first run's files
    again = CliRunner().invoke(main, args + resume, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert json.loads((out / "metrics.json").read_text())["recall@20"] == expected["recall@20"]
