"""Interrupted training resumes bit for bit; diverging training stops and keeps its checkpoint.

A run that is interrupted (an exception mid-epoch here, ``SIGKILL`` of a real process in
:func:`test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run`) and resumed from
its last checkpoint must end with exactly the embeddings, history and best epoch of an
uninterrupted run with the same seed (CPU). That needs every piece of state that decides the
rest of the run: Adam's moments and step count, the learning-rate schedule, the sampling
generator, the early-stopping counters, the best embeddings so far and the history.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner

from lightgcn_sparse.checkpoint import CheckpointError
from lightgcn_sparse.cli import main
from lightgcn_sparse.model import LightGCN, TrainingDiverged
from lightgcn_sparse.trainer import Callback


def matrices(seed: int = 0):
    rng = np.random.default_rng(seed)
    dense = rng.random((40, 30)) < 0.25
    held = dense & (rng.random(dense.shape) < 0.2)
    return sp.csr_matrix((dense & ~held).astype(np.float32)), sp.csr_matrix(held.astype(np.float32))


TRAIN, VALID = matrices()
BASE = dict(embedding_dim=8, num_layers=2, batch_size=32, learning_rate=0.05, seed=11)
CONFIGS = {
    # a shuffled pass per epoch, a decaying learning rate, no early stop within 8 epochs
    "interactions": dict(BASE, epochs=6, lr_decay=0.9, patience=0, metric="ndcg@5"),
    # user-uniform batches (the cs224w protocol), validation every other epoch
    "users": dict(BASE, epochs=6, sampling="users", batches_per_epoch=5, eval_every=2),
    # early stopping fires: best-epoch state and the stop itself must carry over
    "early-stop": dict(BASE, epochs=30, learning_rate=0.2, patience=2, metric="recall@5"),
}


class Interrupted(Exception):
    pass


class interrupted_after(Callback):  # noqa: N801 - reads as a phrase at the call site
    """A callback raising after the ``steps``-th optimizer step, as a crash mid-epoch would."""

    def __init__(self, steps: int) -> None:
        self.steps, self.done = steps, 0

    def on_step_end(self, trainer, epoch: int, step: int) -> None:
        if self.done == self.steps:
            raise Interrupted
        self.done += 1


def assert_same_run(a: LightGCN, b: LightGCN) -> None:
    assert torch.equal(a.embedding_, b.embedding_)
    assert a.best_epoch_ == b.best_epoch_
    assert a.history_ == b.history_


@pytest.fixture(scope="module")
def references():
    return {
        name: LightGCN(**cfg).fit(TRAIN, VALID, show_progress=False)
        for name, cfg in CONFIGS.items()
    }


def steps_per_epoch(cfg: dict) -> int:
    return cfg.get("batches_per_epoch") or math.ceil(TRAIN.nnz / cfg["batch_size"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("when", [0.1, 0.45, 0.8])
def test_resume_after_a_crash_is_bit_identical(references, tmp_path, name, when):
    cfg, path = CONFIGS[name], tmp_path / "checkpoint.npz"
    reference = references[name]
    steps = steps_per_epoch(cfg)
    crash_at = int(when * len(reference.history_) * steps)  # mid-epoch, as a rule
    with pytest.raises(Interrupted):
        LightGCN(**cfg).fit(
            TRAIN, VALID, show_progress=False, checkpoint_path=path, checkpoint_every=1,
            callback=interrupted_after(crash_at),
        )  # fmt: skip
    if not path.exists():  # crashed inside epoch 1: nothing to resume, start over
        assert crash_at < steps
        return
    saved = json.loads(str(np.load(path)["train_state"]))
    assert 1 <= saved["epoch"] < len(reference.history_)
    resumed = LightGCN(**cfg).fit(
        TRAIN, VALID, show_progress=False, checkpoint_path=path, checkpoint_every=1, resume=path
    )
    assert_same_run(resumed, reference)


def test_resume_twice(references, tmp_path):
    cfg, path = CONFIGS["interactions"], tmp_path / "checkpoint.npz"
    kwargs = dict(show_progress=False, checkpoint_path=path, checkpoint_every=2)
    with pytest.raises(Interrupted):
        crash = interrupted_after(int(2.5 * steps_per_epoch(cfg)))
        LightGCN(**cfg).fit(TRAIN, VALID, callback=crash, **kwargs)
    first = json.loads(str(np.load(path)["train_state"]))["epoch"]
    with pytest.raises(Interrupted):
        crash = interrupted_after(2 * steps_per_epoch(cfg))
        LightGCN(**cfg).fit(TRAIN, VALID, resume=path, callback=crash, **kwargs)
    assert json.loads(str(np.load(path)["train_state"]))["epoch"] == first + 2
    resumed = LightGCN(**cfg).fit(TRAIN, VALID, resume=path, **kwargs)
    assert_same_run(resumed, references["interactions"])


def test_resume_from_the_early_stopping_checkpoint_trains_no_further(references, tmp_path):
    cfg, path = CONFIGS["early-stop"], tmp_path / "checkpoint.npz"
    reference = references["early-stop"]
    assert len(reference.history_) < cfg["epochs"], "early stopping must fire in this config"
    # Every 100 epochs, so the only checkpoint is the one written when early stopping fired
    # (the process could die right after it, before saving the model).
    LightGCN(**cfg).fit(
        TRAIN, VALID, show_progress=False, checkpoint_path=path, checkpoint_every=100
    )
    assert json.loads(str(np.load(path)["train_state"]))["stopped"] is True
    resumed = LightGCN(**cfg).fit(TRAIN, VALID, show_progress=False, resume=path)
    assert_same_run(resumed, reference)


def test_resume_with_more_epochs_continues_the_schedule(references, tmp_path):
    cfg, path = CONFIGS["interactions"], tmp_path / "checkpoint.npz"
    LightGCN(**dict(cfg, epochs=3)).fit(
        TRAIN, VALID, show_progress=False, checkpoint_path=path, checkpoint_every=3
    )
    resumed = LightGCN(**cfg).fit(TRAIN, VALID, show_progress=False, resume=path)
    assert_same_run(resumed, references["interactions"])
    assert resumed.history_[-1]["lr"] == pytest.approx(0.05 * 0.9**6, rel=1e-12)


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.npz"
    LightGCN(**dict(CONFIGS["interactions"], epochs=2)).fit(
        TRAIN, VALID, show_progress=False, checkpoint_path=path, checkpoint_every=1
    )
    return path


@pytest.mark.parametrize(
    "changes, data, words",
    [
        (dict(learning_rate=0.01), None, ["different settings", "learning_rate=0.05 (now 0.01)"]),
        (dict(seed=12), None, ["different settings", "seed=11 (now 12)"]),
        (dict(embedding_dim=4), None, ["embedding_dim=8 (now 4)"]),
        ({}, matrices(1), ["trained on other data", "Resume with the same data"]),
        ({}, (TRAIN, None), ["other validation data", "this run has none"]),
        ({}, (TRAIN, VALID[:, ::-1].tocsr()), ["other validation data"]),
    ],
    ids=["lr", "seed", "dim", "data", "no-validation", "other-validation"],
)
def test_resume_refuses_another_run(checkpoint_file, changes, data, words):
    train, valid = data or (TRAIN, VALID)
    before = checkpoint_file.read_bytes()
    with pytest.raises(CheckpointError) as excinfo:
        LightGCN(**dict(CONFIGS["interactions"], **changes)).fit(
            train, valid, show_progress=False, resume=checkpoint_file
        )
    message = str(excinfo.value)
    assert repr(str(checkpoint_file)) in message
    for word in words:
        assert word in message, message
    assert checkpoint_file.read_bytes() == before


def test_resume_refuses_a_saved_model_and_a_damaged_checkpoint(checkpoint_file, tmp_path):
    model = LightGCN(**CONFIGS["interactions"]).fit(TRAIN, VALID, show_progress=False)
    saved = model.save(tmp_path / "model.npz")
    with pytest.raises(CheckpointError, match="is a saved model, not a training checkpoint"):
        LightGCN(**CONFIGS["interactions"]).fit(TRAIN, VALID, resume=saved)
    with np.load(checkpoint_file) as npz:
        arrays = {k: npz[k] for k in npz.files}
    broken = tmp_path / "broken.npz"
    state = json.loads(str(arrays["train_state"]))
    del state["optimizer"]
    np.savez(broken, **dict(arrays, train_state=np.array(json.dumps(state))))
    with pytest.raises(CheckpointError, match="training state is incomplete or malformed"):
        LightGCN(**CONFIGS["interactions"]).fit(TRAIN, VALID, resume=broken)
    np.savez(broken, **dict(arrays, optim_exp_avg=np.zeros((3, 8), dtype=np.float32)))
    with pytest.raises(CheckpointError, match="optim_exp_avg has shape"):
        LightGCN(**CONFIGS["interactions"]).fit(TRAIN, VALID, resume=broken)


# ------------------------------------------------------------------ divergence


def test_absurd_learning_rate_raises_training_diverged():
    cfg = dict(CONFIGS["interactions"], learning_rate=1e30, epochs=3)
    start = LightGCN(**dict(cfg, epochs=0)).fit(TRAIN, show_progress=False)
    model = LightGCN(**cfg)
    with pytest.raises(TrainingDiverged) as excinfo:
        model.fit(TRAIN, VALID, show_progress=False)
    message = str(excinfo.value)
    assert "training diverged at epoch 1" in message
    assert "Lower learning_rate (now 1e+30)" in message and "no checkpoint was written" in message
    # The model holds the (finite) embeddings from the start of the diverging epoch.
    assert torch.equal(model.embedding_, start.embedding_)


class Poison(Callback):
    """Turns the loss (through :class:`NanLoss`) or the embeddings NaN/inf at the last batch
    of ``epoch``; records the checkpoint's bytes when ``epoch`` starts, to compare later."""

    def __init__(self, steps: int, epoch: int, what: str, path: Path) -> None:
        self.steps, self.epoch, self.what, self.path = steps, epoch, what, path
        self.snapshot = b""

    def on_epoch_start(self, trainer, epoch: int) -> None:
        if epoch == self.epoch:
            self.snapshot = self.path.read_bytes()

    def on_step_end(self, trainer, epoch: int, step: int) -> None:
        model = trainer.model
        if epoch == self.epoch and step == self.steps - 1 and self.what == "loss":
            model.nan_next_loss = True  # the last step's loss is NaN, its gradient is not
        if epoch == self.epoch and step == self.steps and self.what == "embeddings":
            with torch.no_grad():
                model.embedding_[0, 0] = math.inf


class NanLoss(LightGCN):
    """A test double: ``loss`` returns NaN once when asked, leaving the gradient intact."""

    nan_next_loss = False

    def loss(self, users, pos, neg):
        loss = super().loss(users, pos, neg)
        if self.nan_next_loss:
            self.nan_next_loss = False
            return loss + torch.tensor(math.nan)
        return loss


@pytest.mark.parametrize(
    "what, why", [("loss", "loss is nan"), ("embeddings", "embeddings became NaN or infinite")]
)
def test_divergence_keeps_the_last_good_checkpoint(references, tmp_path, what, why):
    cfg, path = CONFIGS["interactions"], tmp_path / "checkpoint.npz"
    steps = math.ceil(TRAIN.nnz / cfg["batch_size"])
    poison = Poison(steps, 3, what, path)
    model = NanLoss(**cfg)
    with pytest.raises(TrainingDiverged) as excinfo:
        model.fit(TRAIN, VALID, show_progress=False, checkpoint_path=path, checkpoint_every=1,
                  callback=poison)  # fmt: skip
    message = str(excinfo.value)
    assert "training diverged at epoch 3" in message and why in message
    assert f"the last checkpoint, {str(path)!r} (epoch 2), is untouched" in message
    assert path.read_bytes() == poison.snapshot
    with np.load(path) as npz:
        assert json.loads(str(npz["train_state"]))["epoch"] == 2
        # The model holds the embeddings from the start of epoch 3: the checkpoint's.
        np.testing.assert_array_equal(model.embedding_.detach().numpy(), npz["embedding"])
    assert len(model.history_) == 2
    # The kept checkpoint resumes into the same run as one that never diverged.
    resumed = LightGCN(**cfg).fit(TRAIN, VALID, show_progress=False, resume=path)
    assert_same_run(resumed, references["interactions"])


def write_csv(path: Path, users: int = 40, items: int = 30, per_user: int = 8) -> Path:
    rng = np.random.default_rng(5)
    rows = [f"{u},{i}" for u in range(users) for i in rng.choice(items, per_user, replace=False)]
    path.write_text("user,item\n" + "\n".join(rows) + "\n")
    return path


def test_cli_divergence_exits_cleanly_and_keeps_model_and_checkpoint(tmp_path):
    data, out = write_csv(tmp_path / "data.csv"), tmp_path / "run"
    runner = CliRunner()
    args = ["train", "--dataset", str(data), "--out", str(out), "--epochs", "2", "--quiet"]
    assert runner.invoke(main, [*args, "--checkpoint-every", "1"]).exit_code == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"model.npz", "checkpoint.npz", "metrics.json"} <= set(files)
    result = runner.invoke(
        main,
        [
            *args,
            "--learning-rate",
            "1e30",
            "--checkpoint-every",
            "1",
            "--seed",
            "3",
            "--overwrite",
        ],  # fmt: skip
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: training diverged at epoch 1")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files


# ------------------------------------------------------------------ SIGKILL

DRIVER = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(int(sys.argv[1]))
    from lightgcn_sparse import model
    loss = model.LightGCN.loss
    def slow_loss(self, *args):  # slow enough to be killed mid-epoch
        time.sleep(0.05)
        return loss(self, *args)
    model.LightGCN.loss = slow_loss
    from lightgcn_sparse.cli import main
    main(sys.argv[2:], prog_name="lightgcn-sparse")
    """
)


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    # Big enough batches (512 x 64) for torch's parallel CPU kernels to be in play.
    data = write_csv(tmp_path / "data.csv", users=300, items=200, per_user=20)
    common = [
        "train", "--dataset", str(data), "--epochs", "6", "--embedding-dim", "64",
        "--batch-size", "512", "--learning-rate", "0.02", "--lr-decay", "0.9",
        "--patience", "3", "--metric", "recall@5", "--seed", "9", "--quiet",
    ]  # fmt: skip
    killed = tmp_path / "killed"
    checkpoint = killed / "checkpoint.npz"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    threads = str(torch.get_num_threads())  # same float arithmetic as this process
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, threads, *common, "--out", str(killed),
         "--checkpoint-every", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        time.sleep(0.1)  # into the next epoch
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (killed / "model.npz").exists()
    epoch = json.loads(str(np.load(checkpoint)["train_state"]))["epoch"]
    assert 1 <= epoch < 6

    runner = CliRunner()
    resumed = runner.invoke(
        main, [*common, "--out", str(killed), "--checkpoint-every", "1", "--resume",
               str(checkpoint)],
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    straight = tmp_path / "straight"
    reference = runner.invoke(main, [*common, "--out", str(straight)])
    assert reference.exit_code == 0, reference.output

    with np.load(killed / "model.npz") as a, np.load(straight / "model.npz") as b:
        assert np.array_equal(a["embedding"], b["embedding"])
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (killed, straight)]
    for key in ("recall@20", "ndcg@20", "precision@10", "map@10", "best_epoch", "epochs_run"):
        assert metrics[0][key] == metrics[1][key], key
    histories = [json.loads((d / "history.json").read_text()) for d in (killed, straight)]
    assert histories[0] == histories[1]
    for name in ("history.csv", "history.json", "model.npz"):  # the files too, byte for byte
        assert (killed / name).read_bytes() == (straight / name).read_bytes(), name
