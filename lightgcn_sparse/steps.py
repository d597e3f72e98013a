"""How one training step is executed: eagerly, or replayed from a CUDA graph.

A step is: forward (propagation, BPR loss), backward, gradient reduction (the strategy),
optimizer update. :class:`EagerStep` runs it op by op. :class:`GraphedStep` captures the
steady-state step of a single-process CUDA run in a CUDA graph and replays it: the batch is
copied into fixed (B,) buffers (a shorter last batch is padded and masked out of the loss),
so one replay launches the whole step with no Python in between. ``cuda_graph="auto"``
times a few eager steps against a few replays once, at the start, and keeps the faster.
Neither ever reads a tensor back to the host.
"""

from __future__ import annotations

import ctypes
import statistics
import sys
import time
import warnings
from typing import Any

import torch

__all__ = ["EagerStep", "GraphedStep", "keep_freed_memory", "make_optimizer"]

_KEPT = False


def keep_freed_memory() -> bool:
    """Let glibc keep freed heap memory for reuse instead of handing it back to the OS.

    A CPU training step allocates several (N, d) tensors (the propagated embeddings, their
    gradient, the embedding gradients) and frees them again. With glibc's defaults, blocks
    of that size are unmapped or trimmed on free and every new one is page-faulted in again
    (measured here: 15-25 % of a Gowalla step). Raising ``M_MMAP_THRESHOLD`` and
    ``M_TRIM_THRESHOLD`` keeps them for reuse, as torch's CUDA caching allocator does on the
    GPU: the process's resident memory then stays at its peak. Done once per process, on
    Linux with glibc only; returns whether it was applied.
    """
    global _KEPT
    if _KEPT or not sys.platform.startswith("linux"):
        return _KEPT
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
        _KEPT = bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(
            libc.mallopt(m_trim_threshold, 1 << 31)
        )
    except (OSError, AttributeError):  # not glibc
        _KEPT = False
    return _KEPT


def make_optimizer(
    params: list[torch.nn.Parameter], lr: float, capturable: bool = False
) -> torch.optim.Optimizer:
    """Adam with the fused implementation where torch has one for the device (CUDA, and CPU
    since torch 2.4), else the ``foreach`` one: a few kernels per step instead of a dozen
    per parameter. ``capturable`` makes it safe to capture in a CUDA graph."""
    errors = []
    for kind in ({"fused": True}, {"foreach": True}, {}):
        try:
            return torch.optim.Adam(params, lr=lr, capturable=capturable, **kind)
        except (RuntimeError, ValueError, TypeError) as err:  # not for this device / version
            errors.append(err)
    raise errors[-1]


class EagerStep:
    """One step, op by op, through an execution strategy."""

    def __init__(self, model: Any, strategy: Any, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.strategy, self.optimizer = model, strategy, optimizer

    def __call__(self, users, pos, neg) -> torch.Tensor:
        """Train on a global batch; return its mean loss times this process's share."""
        model, strategy, opt = self.model, self.strategy, self.optimizer
        params = model.parameters()
        u, p, n, share = strategy.shard(users, pos, neg)
        opt.zero_grad(set_to_none=True)
        if u.numel():
            loss = model.loss(u, p, n)
            (loss * share if share != 1.0 else loss).backward()
            part = loss.detach() * share
        else:  # an empty shard still joins the gradient reduction, with zeros
            for q in params:
                q.grad = torch.zeros_like(q)
            part = torch.zeros((), dtype=params[0].dtype, device=params[0].device)
        strategy.reduce_gradients(params)
        opt.step()
        return part

    def lr_changed(self) -> None:
        """Nothing to do: an eager step reads the learning rate each time."""


class GraphedStep:
    """The step of a single-process CUDA run, captured once and replayed.

    Args:
        model: the model (its ``loss`` takes a 0/1 ``weight`` mask).
        optimizer: from :func:`make_optimizer` with ``capturable=True``.
        batch_size: the fixed batch shape B; shorter batches are padded and masked.
        mode: ``"on"`` (always replay) or ``"auto"`` (keep whichever is faster, measured
            once over a few steps after warm-up).

    The learning rate is part of the graph, so :meth:`lr_changed` (called when a schedule
    changes it) re-captures at the next step. A capture that fails (an op that cannot be
    captured on this torch build) warns once and the run continues eagerly.
    """

    warmup = 3  # eager steps before capture (lazy initialization, optimizer state)
    probe = 5  # steps timed each way in "auto" mode

    def __init__(self, model: Any, optimizer: torch.optim.Optimizer, batch_size: int,
                 mode: str = "auto") -> None:  # fmt: skip
        self.model, self.optimizer, self.mode = model, optimizer, mode
        dev = model.device
        dtype = model.parameters()[0].dtype
        self.users = torch.zeros(batch_size, dtype=torch.int64, device=dev)  # (B,)
        self.pos = torch.zeros_like(self.users)
        self.neg = torch.zeros_like(self.users)
        self.weight = torch.ones(batch_size, dtype=dtype, device=dev)  # (B,) 0/1 mask
        self.loss = torch.zeros((), dtype=dtype, device=dev)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.enabled = True
        self.calls = 0
        self.times: dict[str, list[float]] = {"eager": [], "graph": []}
        self.stream = torch.cuda.Stream(device=dev)

    def _load(self, users, pos, neg) -> None:
        k, size = users.numel(), self.users.numel()
        if k > size:
            raise ValueError(f"a batch of {k} triples does not fit the graph's {size}.")
        for static, value in ((self.users, users), (self.pos, pos), (self.neg, neg)):
            static[:k].copy_(value)
            if k < size:
                static[k:].zero_()
        self.weight[:k].fill_(1)
        if k < size:
            self.weight[k:].zero_()

    def _body(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.model.loss(self.users, self.pos, self.neg, self.weight)
        loss.backward()
        self.optimizer.step()
        self.loss.copy_(loss.detach())

    def _eager(self) -> None:
        # On a side stream, as warm-up before a capture must be (torch's CUDA graph rules).
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            self._body()
        torch.cuda.current_stream().wait_stream(self.stream)

    def _capture(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._body()
        except Exception as err:  # an op this build cannot capture: go on without graphs
            self.enabled = False
            self.graph = None
            self.optimizer.zero_grad(set_to_none=True)
            warnings.warn(
                f"CUDA graph capture of the training step failed ({type(err).__name__}: "
                f"{err}); training continues without CUDA graphs.",
                stacklevel=3,
            )
            return
        self.graph = graph

    def _timed(self, kind: str, run) -> None:
        torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        self.times[kind].append(time.perf_counter() - start)

    def __call__(self, users, pos, neg) -> torch.Tensor:
        self._load(users, pos, neg)
        self.calls += 1
        probing = self.mode == "auto" and self.calls <= self.warmup + 2 * self.probe
        if not self.enabled or self.calls <= self.warmup:
            self._eager()
        elif probing and self.calls <= self.warmup + self.probe:
            self._timed("eager", self._eager)
        else:
            if self.graph is None:
                self._capture()
                if not self.enabled:
                    self._eager()
                    return self.loss
            if probing:
                self._timed("graph", self.graph.replay)
                if self.calls == self.warmup + 2 * self.probe:
                    self._decide()
            else:
                self.graph.replay()
        return self.loss

    def _decide(self) -> None:
        eager = statistics.median(self.times["eager"])
        graph = statistics.median(self.times["graph"])
        if graph >= eager:
            self.enabled, self.graph = False, None
            self.optimizer.zero_grad(set_to_none=True)

    def lr_changed(self) -> None:
        """The learning rate is baked into the graph: capture again at the next step."""
        if self.graph is not None:
            self.graph = None
            self.optimizer.zero_grad(set_to_none=True)

    @property
    def uses_graph(self) -> bool:
        """Whether steps are (now) replayed from the graph."""
        return self.enabled and self.graph is not None
