"""The trainer: epochs drawn in one call, steps without host syncs, CUDA graphs (on CUDA).

The CUDA tests run where a GPU is present and are skipped with a reason elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lightgcn_sparse import BPRSampler, Callback, LightGCN, Trainer
from lightgcn_sparse.steps import EagerStep, GraphedStep, make_optimizer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


def graph(users: int = 60, items: int = 40, density: float = 0.15, seed: int = 0):
    rng = np.random.default_rng(seed)
    dense = rng.random((users, items)) < density
    dense[np.arange(users), rng.integers(items, size=users)] = True  # everyone has an item
    held = dense & (rng.random(dense.shape) < 0.2)
    return sp.csr_matrix((dense & ~held).astype(np.float32)), sp.csr_matrix(held.astype(np.float32))


TRAIN, VALID = graph()


@pytest.mark.parametrize("batch", [7, 32, 1000])
def test_an_epoch_drawn_at_once_equals_the_batch_by_batch_pass(batch):
    sampler = BPRSampler.from_pairs(*TRAIN.nonzero(), *TRAIN.shape)
    one = torch.Generator().manual_seed(3)
    by_batch = [torch.cat(parts) for parts in zip(*sampler.epoch(batch, one))]
    two = torch.Generator().manual_seed(3)
    steps = -(-sampler.num_eligible // batch)
    (users, pos, neg), sizes = sampler.epoch_triples("interactions", batch, steps, two)
    assert sum(sizes) == users.numel() == sampler.num_eligible
    for a, b in zip(by_batch, (users, pos, neg)):
        assert torch.equal(a, b)


def test_batches_per_epoch_beyond_one_pass_start_a_new_shuffle():
    sampler = BPRSampler.from_pairs(*TRAIN.nonzero(), *TRAIN.shape)
    per_pass = -(-sampler.num_eligible // 64)
    (users, _, _), sizes = sampler.epoch_triples("interactions", 64, per_pass + 2,
                                                 torch.Generator().manual_seed(0))  # fmt: skip
    assert len(sizes) == per_pass + 2 and sizes[per_pass:] == [64, 64]
    assert sizes[per_pass - 1] == sampler.num_eligible - (per_pass - 1) * 64
    assert users.numel() == sum(sizes)


def test_user_mode_draws_every_batch_full():
    sampler = BPRSampler.from_pairs(*TRAIN.nonzero(), *TRAIN.shape)
    (users, pos, neg), sizes = sampler.epoch_triples("users", 16, 5, torch.Generator())
    assert sizes == [16] * 5 and users.numel() == 80
    train = set(zip(*TRAIN.nonzero()))
    assert all((u, p) in train for u, p in zip(users.tolist(), pos.tolist()))
    assert not any((u, n) in train for u, n in zip(users.tolist(), neg.tolist()))


def test_the_optimizer_is_fused_or_foreach():
    p = torch.nn.Parameter(torch.zeros(4, 2))
    opt = make_optimizer([p], 0.1)
    group = opt.param_groups[0]
    assert group.get("fused") or group.get("foreach")


def test_masked_padding_leaves_the_loss_and_gradient_unchanged():
    model = LightGCN(embedding_dim=8, num_layers=2, seed=1)
    model.setup(_index(TRAIN))
    u, p, n = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]), torch.tensor([7, 8, 9])
    plain = model.loss(u, p, n)
    plain.backward()
    grad = model.embedding_.grad.clone()
    model.embedding_.grad = None
    pad = torch.tensor([0, 0])
    weight = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    masked = model.loss(torch.cat([u, pad]), torch.cat([p, pad]), torch.cat([n, pad]), weight)
    masked.backward()
    torch.testing.assert_close(masked, plain)
    torch.testing.assert_close(model.embedding_.grad, grad)


def _index(matrix):
    from lightgcn_sparse.user_items import user_items_from_csr

    return user_items_from_csr(matrix)


def test_the_trainer_reports_each_step_to_callbacks_and_times_epochs_apart():
    seen = []

    class Count:
        def on_epoch_start(self, trainer, epoch):
            seen.append(("start", epoch))

        def on_step_end(self, trainer, epoch, step):
            seen.append(("step", epoch, step))

        def on_epoch_end(self, trainer, record):
            seen.append(("end", record["epoch"]))

    class Counter(Count, Callback):
        pass

    model = LightGCN(embedding_dim=4, num_layers=1, batch_size=64, epochs=2)
    trainer = Trainer(model, show_progress=False, callbacks=[Counter()])
    trainer.fit(_index(TRAIN))
    steps = -(-TRAIN.nnz // 64)
    assert seen[0] == ("start", 1) and seen[steps + 1] == ("end", 1)
    assert [s for s in seen if s[0] == "step"][:2] == [("step", 1, 1), ("step", 1, 2)]
    assert isinstance(trainer.step, EagerStep)
    assert [t["epoch"] for t in model.timings_] == [1, 2]


# ------------------------------------------------------------------ CUDA
class SyncFree(Callback):
    """Makes any host synchronization between the start of the epochs from ``first`` on and
    their last step raise (a graph is captured, and timed once, in the first epoch)."""

    def __init__(self, steps: int, first: int = 2) -> None:
        self.steps, self.first, self.checked = steps, first, 0

    def on_epoch_start(self, trainer, epoch):
        if epoch >= self.first:
            torch.cuda.set_sync_debug_mode("error")

    def on_step_end(self, trainer, epoch, step):
        if epoch >= self.first:
            self.checked += 1
        if step == self.steps:  # the epoch's end reads the loss once: allowed
            torch.cuda.set_sync_debug_mode("default")


@needs_cuda
@pytest.mark.parametrize("cuda_graph", ["off", "on"])
def test_no_host_synchronization_inside_an_epoch(cuda_graph):
    model = LightGCN(embedding_dim=8, num_layers=2, batch_size=64, epochs=2, device="cuda",
                     cuda_graph=cuda_graph)  # fmt: skip
    steps = -(-TRAIN.nnz // 64)
    check = SyncFree(steps)
    try:
        Trainer(model, show_progress=False, callbacks=[check]).fit(_index(TRAIN).to("cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert check.checked == steps


@needs_cuda
@pytest.mark.parametrize("sampling", ["interactions", "users"])
def test_cuda_graph_steps_equal_eager_steps(sampling):
    common = dict(embedding_dim=16, num_layers=2, batch_size=50, epochs=3, seed=4,
                  sampling=sampling, lr_decay=0.9, device="cuda")  # fmt: skip
    eager = LightGCN(**common, cuda_graph="off").fit(TRAIN, VALID, show_progress=False)
    graphed_model = LightGCN(**common, cuda_graph="on")
    trainer = Trainer(graphed_model, show_progress=False)
    trainer.fit(_index(TRAIN).to("cuda"), VALID)
    assert isinstance(trainer.step, GraphedStep) and trainer.step.calls > trainer.step.warmup
    torch.testing.assert_close(graphed_model.embedding_, eager.embedding_, rtol=1e-4, atol=1e-5)
    for a, b in zip(graphed_model.history_, eager.history_):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


@needs_cuda
def test_cuda_graph_auto_keeps_the_faster_and_trains():
    model = LightGCN(embedding_dim=16, num_layers=2, batch_size=32, epochs=2, device="cuda",
                     cuda_graph="auto")  # fmt: skip
    trainer = Trainer(model, show_progress=False)
    trainer.fit(_index(TRAIN).to("cuda"))
    step = trainer.step
    assert len(step.times["eager"]) == step.probe and len(step.times["graph"]) in (0, step.probe)
    assert np.isfinite(model.history_[-1]["loss"])
