"""Data-parallel training: 2 gloo processes on 127.0.0.1 train exactly like 1 process.

The multi-process tests start real processes (``torch.multiprocessing`` and ``torchrun``)
on CPU; each keeps to one thread, so the file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from click.testing import CliRunner

from lightgcn_sparse import experiment
from lightgcn_sparse.cli_options import config_of
from lightgcn_sparse.config import Config
from lightgcn_sparse.distributed import (
    DataParallel,
    DistributedLightGCN,
    backend_for,
    init_distributed,
    rank_device,
    shard_bounds,
)
from lightgcn_sparse.model import LightGCN
from lightgcn_sparse.train import main as train_main
from lightgcn_sparse.trainer import SingleProcess

WORLD = 2


# ---------------------------------------------------------------------------- helpers
def planted_graph(
    num_users: int, num_items: int, per_user: int, groups: int = 6, noise: float = 0.1, seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """Users and items in ``groups`` planted communities (a rank-``groups`` signal).

    Each user picks ``per_user`` distinct items, a fraction ``1 - noise`` of them from its
    own group. Returns (E,) user and item ids with distinct pairs.
    """
    rng = np.random.default_rng(seed)
    user_group = rng.integers(groups, size=num_users)
    item_group = np.arange(num_items) % groups
    users, items = [], []
    for u in range(num_users):
        own = np.flatnonzero(item_group == user_group[u])
        k_own = min(len(own), int(round(per_user * (1 - noise))))
        chosen = set(rng.choice(own, size=k_own, replace=False).tolist())
        while len(chosen) < per_user:
            chosen.add(int(rng.integers(num_items)))
        users += [u] * len(chosen)
        items += sorted(chosen)
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def exact_graph(num_users: int, num_items: int, nnz: int, seed: int = 1):
    """``nnz`` distinct random pairs, no user with every item (all are BPR-eligible)."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(num_users * num_items, size=nnz, replace=False)
    users, items = keys // num_items, keys % num_items
    assert np.bincount(users, minlength=num_users).max() < num_items
    return users.astype(np.int64), items.astype(np.int64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, *args: Any, timeout: float = 120.0) -> None:
    """Run ``fn(rank, world, port, *args)`` in ``WORLD`` fresh processes; re-raise failures."""
    port = free_port()
    ctx = mp.start_processes(
        fn, args=(WORLD, port, *args), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail(f"{WORLD} workers did not finish within {timeout}s")


def join_group(rank: int, world: int, port: int) -> None:
    """Join a gloo group the way torchrun would: through the env:// variables."""
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
    )
    assert init_distributed("cpu", timeout_s=60) == torch.device("cpu")
    assert dist.get_backend() == "gloo"


class Recording:
    """An execution strategy wrapping another (composition, through the public strategy
    interface): keeps each step's global batch and the first step's reduced gradient."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.batches: list[tuple[torch.Tensor, ...]] = []
        self.first_grad: torch.Tensor | None = None

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def shard(self, u, p, n):
        self.batches.append((u.clone(), p.clone(), n.clone()))
        return self.inner.shard(u, p, n)

    def reduce_gradients(self, params) -> None:
        self.inner.reduce_gradients(params)
        if self.first_grad is None:
            self.first_grad = params[0].grad.detach().clone()


def recorded_fit(cfg: Config, graph, inner) -> tuple[LightGCN, Recording]:
    strategy = Recording(inner)
    model = LightGCN(cfg).fit(graph, show_progress=False, strategy=strategy)
    return model, strategy


#: (name, graph (users, items, U, I), config) of the exactness scenarios
def scenarios() -> list[tuple[str, tuple, Config]]:
    base = Config(embedding_dim=8, num_layers=2, reg=1e-2, seed=7, patience=0)
    small = (*exact_graph(40, 30, 300), 40, 30)
    # 260 = 7 * 37 + 1 interactions, batches of 37: shards of 18 and 19 triples, and a last
    # batch of one triple, so rank 1 gets an empty shard.
    odd = (*exact_graph(50, 40, 260, seed=2), 50, 40)
    return [
        ("one_step", small, base.replace(sampling="users", batch_size=64, batches_per_epoch=1,
                                         epochs=1)),
        ("uneven", odd, base.replace(batch_size=37, epochs=2, lr_decay=0.5, learning_rate=0.01)),
    ]  # fmt: skip


def exactness_worker(rank: int, world: int, port: int, out: str) -> None:
    join_group(rank, world, port)
    results = {}
    for name, graph, cfg in scenarios():
        model, rec = recorded_fit(cfg, graph, DataParallel())
        emb = model.embedding_.detach()
        gathered = [torch.empty_like(emb) for _ in range(world)]
        dist.all_gather(gathered, emb)
        assert all(torch.equal(g, gathered[0]) for g in gathered), f"{name}: ranks differ"
        results[name] = {
            "embedding": emb,
            "first_grad": rec.first_grad,
            "batches": rec.batches,
            "history": model.history_,
            "world_size": rec.world_size,
        }
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture
def one_thread():
    """Train the 1-process references on one thread, like each worker (and fast under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- unit tests
@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("batch", [0, 1, 2, 7, 64, 65])
def test_shard_bounds_tile_the_batch(batch, world):
    bounds = [shard_bounds(batch, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == batch
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_shard_bounds_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"rank must be an int in \[0, 1\]. Got 2"):
        shard_bounds(8, 2, 2)
    with pytest.raises(ValueError, match="world_size must be an int in"):
        shard_bounds(8, 0, 0)


def test_backend_and_rank_device(monkeypatch):
    assert backend_for("cpu") == "gloo" and backend_for("cuda:1") == "nccl"
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert rank_device("cpu") == torch.device("cpu")
    assert rank_device("cuda") == torch.device("cuda", 1)
    assert rank_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="device must be 'cuda' when torchrun starts several"):
        rank_device("cuda:0")


def test_fit_needs_a_process_group():
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    graph = (*exact_graph(10, 8, 30), 10, 8)
    with pytest.raises(RuntimeError, match="needs a torch.distributed process group"):
        DistributedLightGCN(epochs=1).fit(graph, show_progress=False)


def test_one_process_group_equals_lightgcn(tmp_path, one_thread):
    """World size 1 (a plain `python` run) is bitwise LightGCN, validation included."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    users, items = planted_graph(60, 40, 8)
    keep = np.arange(users.size) % 5 != 0
    train = (users[keep], items[keep], 60, 40)
    ones = np.ones(int((~keep).sum()), dtype=np.float32)
    valid = sp.csr_matrix((ones, (users[~keep], items[~keep])), shape=(60, 40))

    cfg = Config(embedding_dim=8, num_layers=2, batch_size=32, epochs=4, patience=2, seed=3)
    ref = LightGCN(cfg).fit(train, valid, show_progress=False)
    init_distributed("cpu")
    try:
        model = DistributedLightGCN(cfg).fit(
            train, valid, show_progress=False, checkpoint_path=tmp_path / "c.npz",
            checkpoint_every=1,
        )  # fmt: skip
    finally:
        dist.destroy_process_group()
    assert model.world_size_ == 1
    assert torch.equal(model.embedding_, ref.embedding_)
    assert model.history_ == ref.history_
    assert (tmp_path / "c.npz").is_file()
    assert model.evaluate(valid) == ref.evaluate(valid)  # outside fit: local, no collective


def test_train_entry_takes_the_cli_options():
    result = CliRunner().invoke(train_main, ["--help"])
    assert result.exit_code == 0, result.output
    for flag in ("--dataset", "--split", "--embedding-dim", "--batch-size", "--preset", "--out",
                 "--checkpoint-every", "--resume", "--backend"):  # fmt: skip
        assert flag in result.output


# ---------------------------------------------------------------------------- 2 processes
def test_two_processes_step_exactly_like_one(tmp_path, one_thread):
    """Each step's global batch, its all-reduced gradient and the parameters after it equal
    those of one process with the whole batch; the ranks' parameters are identical."""
    spawn(exactness_worker, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for name, graph, cfg in scenarios():
        ref, rec = recorded_fit(cfg, graph, SingleProcess())
        got = ranks[0][name]
        assert got["world_size"] == WORLD
        assert len(got["batches"]) == len(rec.batches) > 0
        for rank in ranks:  # every rank drew exactly the 1-process batches
            for mine, theirs in zip(rank[name]["batches"], rec.batches):
                assert all(torch.equal(a, b) for a, b in zip(mine, theirs)), name
        # the reduced gradient is the full-batch gradient (Adam alone would hide a scale)
        scale = float(rec.first_grad.abs().max())
        torch.testing.assert_close(got["first_grad"], rec.first_grad, rtol=1e-5, atol=1e-6 * scale)
        torch.testing.assert_close(got["embedding"], ref.embedding_.detach(), rtol=0, atol=2e-6)
        assert torch.equal(ranks[1][name]["embedding"], got["embedding"])
        for mine, theirs in zip(got["history"], ref.history_):
            assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5), name


def test_torchrun_two_processes_match_one_process(tmp_path, one_thread):
    """`torchrun --nproc_per_node 2 -m lightgcn_sparse.train` on a planted graph reaches the
    validation metric of a 1-process run; only rank 0 prints and writes."""
    users, items = planted_graph(300, 180, 20, seed=4)
    data = tmp_path / "planted.csv"
    data.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in zip(users, items)))
    options = dict(embedding_dim=16, num_layers=2, batch_size=256, epochs=6, learning_rate=0.01,
                   patience=3, seed=11)  # fmt: skip
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    out = tmp_path / "run2"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           "-m", "lightgcn_sparse.train", f"--dataset={data}", f"--out={out}",
           "--checkpoint-every=2", *flags]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.count("epoch 1/6") == 1, proc.stderr  # rank 0 alone reports
    assert proc.stdout.count("saved ") == 1, proc.stdout
    assert {"model.npz", "metrics.json", "history.json", "checkpoint.npz"} <= {
        p.name for p in out.iterdir()
    }
    two = json.loads((out / "history.json").read_text())
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["world_size"] == WORLD

    spec = experiment.DataSpec(dataset=str(data))
    ref, _, _ = experiment.train(spec, config_of("default", (), options), show_progress=False)
    one = ref.history_
    metric = ref.config.metric
    best_one = max(r[metric] for r in one)
    best_two = max(r[metric] for r in two)
    print(f"validation {metric}: 1 process {best_one:.6f}, {WORLD} processes {best_two:.6f}")
    assert len(two) == len(one)
    assert best_two == pytest.approx(best_one, abs=0.01)
    assert saved["best_epoch"] == ref.best_epoch_
    assert saved[metric] > 2 * saved["baseline"][metric]  # test: it learned the planted groups
