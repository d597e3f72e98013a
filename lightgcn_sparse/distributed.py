r"""Data-parallel training on ``torch.distributed`` (DDP semantics): an execution strategy.

:class:`DataParallel` is a strategy for :class:`~lightgcn_sparse.trainer.Trainer`; pass it as
``LightGCN(...).fit(train, valid, strategy=DataParallel())`` in every process. Every rank
holds the whole graph and a full copy of the layer-0 embeddings. Each step,

1. every rank draws the same global batch of ``B`` BPR triples from the same seeded
   generator, so the batch is exactly the one a single process would draw;
2. rank ``r`` of ``W`` takes the contiguous slice ``[B r / W, B (r + 1) / W)`` of it
   (:func:`shard_bounds`), of size :math:`b_r`, and back-propagates its shard's loss
   scaled by :math:`b_r / B`. ``bpr_loss`` divides by the shard size, so with
   :math:`L_r` the shard's mean loss (BPR and L2 term alike)

   .. math:: \nabla L = \nabla \frac{1}{B} \sum_{b=1}^{B} \ell_b
             = \sum_{r=0}^{W-1} \frac{b_r}{B} \nabla L_r ,

   the full-batch gradient, for any ``B`` (shards may differ in size or be empty);
3. the scaled gradients are all-reduced with ``SUM`` and every rank takes the same Adam
   step, so the parameters stay identical without being broadcast again.

The initial (or resumed) parameters are broadcast from rank 0. Validation runs on rank 0 and
its results are broadcast, so early stopping and the kept best epoch agree on every rank;
only rank 0 prints progress and writes checkpoints. After training every rank checks that
it holds rank 0's parameters.

The whole K-layer propagation (forward and backward) is replicated on every rank: data
parallelism splits the per-triple work of the batch, not the graph. See the module
``lightgcn_sparse.train`` for the ``torchrun`` entry point.

Typical use, inside a process started by ``torchrun``::

    device = init_distributed("cpu")           # gloo on CPU, nccl on cuda:LOCAL_RANK
    model = LightGCN(device=str(device)).fit(train, valid, strategy=DataParallel())
    if get_rank() == 0:
        model.save("model.npz")
"""

from __future__ import annotations

import datetime
import os
import warnings
from typing import Any

import torch
import torch.distributed as dist

from ._checks import check_int
from .config import Config
from .model import LightGCN
from .trainer import SingleProcess

__all__ = [
    "DataParallel",
    "DistributedLightGCN",
    "backend_for",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "rank_device",
    "shard_bounds",
]


def shard_bounds(batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s contiguous slice of a batch of ``batch_size``.

    The slices of ranks ``0 .. world_size - 1`` tile ``[0, batch_size)`` in order; their
    sizes differ by at most one, and some are empty when ``batch_size < world_size``.
    """
    batch_size = check_int("batch_size", batch_size, low=0)
    world_size = check_int("world_size", world_size, low=1)
    rank = check_int("rank", rank, low=0, high=world_size - 1)
    return batch_size * rank // world_size, batch_size * (rank + 1) // world_size


def backend_for(device: str | torch.device) -> str:
    """``"nccl"`` for a CUDA device, ``"gloo"`` for anything else."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an int. Got {value!r}.") from None


def rank_device(device: str | torch.device = "cpu") -> torch.device:
    """The device this process trains on: ``cpu``, or ``cuda:LOCAL_RANK`` for ``cuda``.

    ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` come from ``torchrun`` (0 and 1 without it). An
    explicit ``cuda:N`` is honoured only with one process per machine; with several, each
    process must own its GPU, so pass plain ``cuda``.
    """
    dev = torch.device(device)
    if dev.type != "cuda":
        return dev
    local_rank = _env_int("LOCAL_RANK", 0)
    if dev.index is not None:
        if _env_int("LOCAL_WORLD_SIZE", 1) > 1 and dev.index != local_rank:
            raise ValueError(
                f"device must be 'cuda' when torchrun starts several processes per machine "
                f"(each uses cuda:LOCAL_RANK). Got {str(device)!r} on local rank {local_rank}."
            )
        return dev
    return torch.device("cuda", local_rank)


def init_distributed(
    device: str | torch.device = "cpu",
    backend: str | None = None,
    timeout_s: float = 1800.0,
) -> torch.device:
    """Join the ``torchrun`` job (or start a 1-process group) and return this rank's device.

    Reads the ``env://`` variables that ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``). Without them (plain ``python``) it starts a group of
    one process, so the same code runs unchanged. Does nothing but return the device when a
    default process group already exists.

    Args:
        device: the configured device; ``cuda`` becomes ``cuda:LOCAL_RANK`` (see
            :func:`rank_device`), which is also made the current CUDA device.
        backend: ``"gloo"`` or ``"nccl"``; default :func:`backend_for` the device.
        timeout_s: how long a collective may wait for the other ranks before failing.
    """
    dev = rank_device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device is {str(device)!r} but CUDA is not available.")
        torch.cuda.set_device(dev)
    if dist.is_initialized():
        return dev
    backend = backend or backend_for(dev)
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl'. Got {backend!r}.")
    if backend == "nccl" and dev.type != "cuda":
        raise ValueError(f"backend 'nccl' needs a CUDA device. Got device {str(dev)!r}.")
    timeout = datetime.timedelta(seconds=timeout_s)
    if "WORLD_SIZE" in os.environ:
        dist.init_process_group(backend, init_method="env://", timeout=timeout)
    else:  # not under torchrun: a group of one, needing no port
        dist.init_process_group(
            backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout
        )
    return dev


def get_rank() -> int:
    """This process's rank, 0 without a process group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """The number of processes, 1 without a process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class DataParallel(SingleProcess):
    """Data-parallel execution strategy over a ``torch.distributed`` process group.

    Args:
        group: the process group to train over; default the global group.

    Every rank builds the same model and data and calls ``fit`` with its own
    ``DataParallel()``; ``batch_size`` is the *global* batch. The result equals a 1-process
    run up to float rounding.
    """

    def __init__(self, group=None) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "DataParallel needs a torch.distributed process group; call "
                "lightgcn_sparse.distributed.init_distributed() in every process first (or "
                "launch with `torchrun -m lightgcn_sparse.train`)."
            )
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.backend = dist.get_backend(group)

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def _src(self) -> int:
        """The global rank of this group's rank 0."""
        return 0 if self.group is None else dist.get_global_rank(self.group, 0)

    def setup(self, model) -> None:
        """Check every rank trains on the same data, then adopt rank 0's parameters."""
        if self.backend == "nccl" and model.device.type != "cuda":
            raise ValueError(
                f"the process group uses nccl, which needs a CUDA device; config.device is "
                f"{model.config.device!r}. Use the gloo backend on CPU."
            )
        prints: list[Any] = [None] * self.world_size
        dist.all_gather_object(prints, model.fingerprint_, group=self.group)
        if len(set(prints)) != 1:
            raise ValueError(
                "every rank must train on the same interactions; their fingerprints "
                f"are {prints} (rank order)."
            )
        with torch.no_grad():
            for p in model.parameters():
                dist.broadcast(p.data, src=self._src(), group=self.group)
        model.parameters_changed()

    def shard(self, users, pos, neg):
        start, stop = shard_bounds(users.numel(), self.rank, self.world_size)
        share = (stop - start) / max(users.numel(), 1)  # b_r / B
        return users[start:stop], pos[start:stop], neg[start:stop], share

    def reduce_gradients(self, params) -> None:
        """Sum the shards' (already scaled) gradients: every rank gets the full-batch one."""
        for p in params:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, group=self.group)

    def reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        value = value.clone().reshape(1)
        dist.all_reduce(value, op=dist.ReduceOp.SUM, group=self.group)
        return value[0]

    def on_writer(self, fn):
        box = [fn() if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=self._src(), group=self.group)
        return box[0]

    def finish(self, model) -> None:
        """Every rank must hold rank 0's parameters; warn and adopt them if one does not."""
        for p in model.parameters():
            reference = p.detach().clone()
            dist.broadcast(reference, src=self._src(), group=self.group)
            if torch.equal(reference, p.detach()):
                continue
            diff = float((reference - p.detach()).abs().max())
            warnings.warn(
                f"rank {self.rank}'s parameters drifted from rank 0's (max abs difference "
                f"{diff:.3g}); adopting rank 0's.",
                stacklevel=3,
            )
            with torch.no_grad():
                p.copy_(reference)
        model.parameters_changed()


class DistributedLightGCN(LightGCN):
    """:class:`LightGCN` whose :meth:`fit` trains with the :class:`DataParallel` strategy.

    A convenience kept for existing code: ``DistributedLightGCN(cfg).fit(train, valid)``
    equals ``LightGCN(cfg).fit(train, valid, strategy=DataParallel(group))``. Only rank 0
    prints progress and writes ``checkpoint_path``; ``resume`` is read by every rank.

    Attributes (after :meth:`fit`): as :class:`LightGCN`, plus ``rank_`` and
    ``world_size_``.
    """

    def __init__(self, config: Config | None = None, *, group=None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.group = group

    def fit(self, user_items, validation=None, *, show_progress: bool = True, **kwargs):
        """Train data-parallel; same arguments as :meth:`LightGCN.fit`, on every rank."""
        strategy = DataParallel(self.group)
        self.rank_, self.world_size_ = strategy.rank, strategy.world_size
        with warnings.catch_warnings():
            if strategy.rank != 0:  # rank 0 speaks for all
                warnings.simplefilter("ignore")
            return super().fit(
                user_items, validation, show_progress=show_progress and strategy.rank == 0,
                strategy=strategy, **kwargs,
            )  # fmt: skip
