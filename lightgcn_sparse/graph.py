r"""A symmetric CSR adjacency prepared for repeated sparse products, on CPU and CUDA.

Two kernels compute one product :math:`\hat A X` from the same stored CSR tensor:

* ``"embedding_bag"``: ``F.embedding_bag(col, X, offsets=crow, per_sample_weights=values,
  mode="sum")``. Row ``r`` of :math:`\hat A X` is the weighted sum of the rows of ``X`` named
  by ``col[crow[r]:crow[r+1]]``, which is exactly a bag. On CPU this is several times faster
  than torch's CSR ``sparse.mm`` (see ``benchmarks/README.md``).
* ``"sparse_mm"``: ``torch.sparse.mm(adj, X)`` (MKL on CPU, cuSPARSE on CUDA).

``kernel="auto"`` picks the faster one measured on each device type (:data:`AUTO_KERNEL`).
A :class:`Graph` keeps what repeated products need: value copies in each compute dtype, on
CPU the row split measured fastest for it (one call; or the rows cut into two halves of
equal nnz, as two calls or, with two threads, as one call padded so that each thread gets
one half; all give bit-identical results, so the choice never changes a result; timed on
the first products of each setting, where they run), the LightGCN++ scalings, per-thread
scratch buffers, and an optional node order in which the products run.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .adjacency import adjacency_degrees, check_adjacency, degree_scaling

KERNELS = ("embedding_bag", "sparse_mm")
#: Kernel used by ``kernel="auto"`` on each device type, chosen by measurement
#: (``python -m benchmarks.propagate``).
AUTO_KERNEL = {"cpu": "embedding_bag", "cuda": "sparse_mm"}
#: With several CPU threads, graphs above this many stored entries are timed as one call and
#: as split into halves of equal nnz; the faster is kept (see :meth:`Graph.matmul`).
SPLIT_MIN_NNZ = 1 << 20
#: Products timed per split choice, after one untimed each, before the fastest is kept.
SPLIT_TRIAL_ROUNDS = 15
#: Names accepted by ``propagation_dtype``.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

def resolve_kernel(kernel: str, device: torch.device) -> str:
    """Map ``"auto"`` to the measured default kernel of ``device``; validate other names."""
    if kernel == "auto":
        return AUTO_KERNEL.get(device.type, "sparse_mm")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be 'auto' or one of {KERNELS}. Got {kernel!r} instead.")
    return kernel


class Graph:
    """A symmetric CSR adjacency prepared for repeated products.

    Args:
        adj: (N, N) symmetric sparse CSR tensor (e.g. from :func:`normalized_adjacency`),
            already in the node order ``order`` describes.
        order: optional (N,) int64: ``order[k]`` is the node computed at position ``k``.
            :func:`propagate` maps inputs and outputs, so callers see the original order.
    """

    def __init__(self, adj: torch.Tensor, order: Optional[torch.Tensor] = None) -> None:
        self.adj = check_adjacency(adj)
        self.order = order
        self.inverse = None
        if order is not None:
            if order.shape != (adj.shape[0],):
                raise ValueError(f"order must have shape ({adj.shape[0]},). Got {order.shape}.")
            self.order = order.to(device=adj.device, dtype=torch.int64)
            self.inverse = torch.empty_like(self.order)
            self.inverse[self.order] = torch.arange(self.order.numel(), device=adj.device)
        self._csr = {adj.dtype: adj}  # the adjacency with values in each compute dtype
        self._split: dict[tuple, Optional[tuple[str, int]]] = {}  # CPU: measured row split
        self._pads: dict[tuple, tuple[torch.Tensor, int]] = {}  # padded crow per split
        self._scalings: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # LightGCN++
        self._local = threading.local()  # per-thread scratch buffers, reused call after call

    @classmethod
    def wrap(cls, adj: Union[Graph, torch.Tensor]) -> Graph:
        return adj if isinstance(adj, Graph) else cls(adj)

    @property
    def num_nodes(self) -> int:
        return self.adj.shape[0]

    @property
    def device(self) -> torch.device:
        return self.adj.device

    @property
    def dtype(self) -> torch.dtype:
        return self.adj.dtype

    def scratch(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A buffer private to this graph and thread, reused across calls (never returned
        to callers): fresh (N, d) allocations are page-faulted in anew on every call.

        One buffer per name, dtype and trailing shape, grown to the most rows asked for;
        a call gets its leading rows (a contiguous view). Keyed by the full shape, a
        training step's batch rows (a different count each batch) kept one buffer per
        count: 150 MiB after 200 bfloat16 steps on Gowalla, and growing.
        """
        buffers = self._local.__dict__.setdefault("buffers", {})
        key = (name, tuple(shape[1:]), dtype)
        buf = buffers.get(key)
        if buf is None or buf.shape[0] < shape[0]:
            buf = buffers[key] = torch.empty(shape, dtype=dtype, device=self.device)
        return buf[: shape[0]]

    def csr(self, dtype: torch.dtype) -> torch.Tensor:
        """The adjacency with its values in ``dtype`` (cached)."""
        if dtype not in self._csr:
            a = self.adj
            self._csr[dtype] = torch.sparse_csr_tensor(
                a.crow_indices(), a.col_indices(), a.values().to(dtype), size=a.shape,
                check_invariants=False,
            )  # fmt: skip
        return self._csr[dtype]

    def scalings(
        self, norm_left: float, norm_right: float, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""(N, 1) ``l`` and ``r`` with :math:`D^{-a} A D^{-b} = \mathrm{diag}(l)\, S\,
        \mathrm{diag}(r)`: :math:`l = d^{1/2-a}`, :math:`r = d^{1/2-b}` (cached).

        ``d`` is each row's stored entries (:func:`adjacency_degrees`), in the computing
        order; an isolated node gets 1 (:func:`degree_scaling`).
        """
        key = (float(norm_left), float(norm_right), dtype)
        if key not in self._scalings:
            deg = adjacency_degrees(self.adj)  # (N,)
            left = degree_scaling(deg, 0.5 - key[0], dtype)[:, None]  # (N, 1)
            right = degree_scaling(deg, 0.5 - key[1], dtype)[:, None]  # (N, 1)
            self._scalings[key] = (left, right)
        return self._scalings[key]

    def matmul(
        self, x: torch.Tensor, kernel: str = "auto", out: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """``adj @ x`` in ``x``'s dtype and node order (a split into two calls is joined
        into ``out`` if given; otherwise the result is a new tensor)."""
        kernel = resolve_kernel(kernel, x.device)
        adj = self.csr(x.dtype)
        if adj._nnz() == 0 or x.numel() == 0:  # embedding_bag rejects zero-width rows
            return torch.zeros_like(x)
        if kernel == "sparse_mm":
            return torch.sparse.mm(adj, x)
        crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
        split, trial = self._split_row(crow, x) if x.device.type == "cpu" else (None, None)
        if trial is None:
            return self._product(crow, col, val, x, split, out)
        trial, slot = trial
        start, seconds = time.perf_counter(), None
        try:
            result = self._product(crow, col, val, x, split, out)
            seconds = time.perf_counter() - start
        finally:  # a failed product still uses up its slot (timed as nothing)
            trial.record(slot, seconds)
        return result

    def _product(self, crow, col, val, x, split, out) -> torch.Tensor:
        """:meth:`matmul`'s embedding_bag product with the row split ``split``."""
        if split is None:
            return _bag(crow, col, val, x)
        # embedding_bag's CPU threads split the bags evenly by count; the two blocks of a
        # bipartite graph have equal nnz but very different row degrees, so one call can
        # leave a thread idle. "padded": empty bags at one end put the count split of two
        # threads at ``mid`` (each gets one half) and the (N, d) result is a view of the
        # output; "two": two calls on the halves (each split over all threads), joined.
        how, mid = split
        if how == "padded":
            crow_padded, start = self._padded(crow, mid)
            return _bag(crow_padded, col, val, x)[start : start + crow.numel() - 1]
        lo = int(crow[mid])
        top = _bag(crow[: mid + 1], col[:lo], val[:lo], x)
        bottom = _bag(crow[mid:] - lo, col[lo:], val[lo:], x)
        return torch.cat([top, bottom], out=out) if out is not None else torch.cat([top, bottom])

    def _padded(self, crow: torch.Tensor, mid: int) -> tuple[torch.Tensor, int]:
        """``crow`` with empty bags added before the first row (``mid`` below N / 2) or
        after the last, so that ``mid`` is the middle bag; and where row 0 now starts."""
        key = (mid, crow.dtype)
        if key not in self._pads:
            n = crow.numel() - 1
            pad = abs(n - 2 * mid)
            if 2 * mid < n:
                self._pads[key] = (torch.cat([crow[:1].expand(pad), crow]), pad)
            else:
                self._pads[key] = (torch.cat([crow, crow[-1:].expand(pad)]), 0)
        return self._pads[key]

    def rows_csr(
        self, rows: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stored entries of ``rows`` as a CSR of R rows: ``(crow (R + 1,), col, val)``
        with values in ``dtype``, each row's entries in their stored order.

        ``rows`` (R,) int64 positions in the computing order. Costs one host sync for the
        number of entries (a data-dependent size).
        """
        adj = self.csr(dtype)
        crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
        starts = crow[rows]  # (R,)
        lengths = crow[rows + 1] - starts
        offsets = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
        torch.cumsum(lengths, 0, dtype=crow.dtype, out=offsets[1:])
        total = int(offsets[-1])
        entries = torch.arange(total, dtype=crow.dtype, device=crow.device)
        entries += torch.repeat_interleave(starts - offsets[:-1], lengths, output_size=total)
        return offsets, col.index_select(0, entries), val.index_select(0, entries)

    def rows_matmul(
        self,
        x: torch.Tensor,
        rows: torch.Tensor,
        kernel: str = "auto",
        sub: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None,
    ) -> torch.Tensor:
        """``(adj @ x)[rows]``, computing only those rows: (R, d) in ``x``'s dtype.

        ``rows`` (R,) int64 positions in the computing order; ``sub`` their
        :meth:`rows_csr` in ``x``'s dtype, built here if not given. Each row is summed in
        the same order as :meth:`matmul` (the same values, bit for bit, with the same
        kernel).
        """
        kernel = resolve_kernel(kernel, x.device)
        offsets, sub_col, sub_val = self.rows_csr(rows, x.dtype) if sub is None else sub
        if sub_col.numel() == 0 or x.numel() == 0:  # embedding_bag rejects zero-width rows
            return x.new_zeros((rows.numel(), x.shape[1]))
        if kernel == "sparse_mm":
            sub_adj = torch.sparse_csr_tensor(offsets, sub_col, sub_val, check_invariants=False,
                                              size=(rows.numel(), self.num_nodes))  # fmt: skip
            return torch.sparse.mm(sub_adj, x)
        return _bag(offsets, sub_col, sub_val, x)

    def split_chosen(self, dtype: torch.dtype, width: int) -> bool:
        """Whether the row split of products in ``dtype`` with ``width`` columns is chosen
        (on the current thread count), so that no later product is a trial's."""
        return (torch.get_num_threads(), dtype, width) in self._split

    def settle_split(self, x: torch.Tensor, kernel: str = "auto") -> None:
        """Run products of ``x`` until the row split of its setting is chosen (benchmarks
        call this so that no timed product is a trial's; training chooses in its first
        steps, where the products run)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != self.num_nodes:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be an (N, d) tensor with N = {self.num_nodes}. Got {got}.")
        if self.csr(x.dtype)._nnz() == 0 or x.numel() == 0 or x.device.type != "cpu":
            return
        if resolve_kernel(kernel, x.device) != "embedding_bag":
            return
        while not self.split_chosen(x.dtype, x.shape[1]):
            self.matmul(x, kernel)

    def _split_row(
        self, crow: torch.Tensor, x: torch.Tensor
    ) -> tuple[Optional[tuple[str, int]], Optional[tuple[_SplitTrial, int]]]:
        """The row split for this product, ``("two" | "padded", mid)`` at the row ``mid``
        that halves the nnz, or None (one call as it is); and, while the split of its
        setting (threads, dtype, width) is being chosen, the trial and slot to report this
        call's time to.

        The choice is timed in place: the first products of a setting take the choices in
        shuffled rounds (:class:`_SplitTrial`) and are timed where they run (inside a
        training step: after Adam has walked the (N, d) master weights, between the
        backward's row sums); the lowest median is kept. Timing them apart, back to back
        on one warm input, told the choices apart by 2-5 % and kept one call in 2 of 6
        Gowalla fits (float32) and 5 of 6 (bfloat16), while in training the padded call
        was 14 % (float32) and 5 % (bfloat16) faster per step (benchmarks/README.md). With
        two threads the padded call usually wins when the halves gather from tables of
        similar size (Gowalla), the two calls when one half gathers from a much larger
        table than the other (the power-law and hub graphs). All give bit-identical
        results, so the choice never changes a number.

        The choice (and a trial under way) is kept on the adjacency tensor itself, so that
        another Graph of the same tensor reuses it: ``propagate(adj, ...)`` on a bare
        tensor wraps it in a new Graph on every call.
        """
        threads = torch.get_num_threads()
        key = (threads, x.dtype, x.shape[1])
        if key in self._split:
            return self._split[key], None
        if threads < 2 or int(crow[-1]) < SPLIT_MIN_NNZ:
            self._split[key] = None
            return None, None
        kept = self.adj.__dict__.setdefault("_lightgcn_split_row", {})
        if key not in kept:
            nnz = int(crow[-1])
            mid = int(torch.searchsorted(crow, torch.tensor(nnz // 2, dtype=crow.dtype)))
            if mid <= 0 or mid >= crow.numel() - 1:
                kept[key] = None
            else:
                choices = [None, ("two", mid)] + ([("padded", mid)] if threads == 2 else [])
                kept[key] = _SplitTrial(choices, SPLIT_TRIAL_ROUNDS)
        entry = kept[key]
        if isinstance(entry, _SplitTrial):
            slot = entry.claim()
            if slot is not None:
                return entry.choice(slot), (entry, slot)
            if not entry.done():  # every slot taken, some products still running: any
                return entry.choices[0], None  # choice gives the same result; untimed
            entry = kept[key] = entry.best()
        self._split[key] = entry
        return entry, None


class _SplitTrial:
    """Timing of row-split choices on the products as they come: each choice once untimed,
    then ``rounds`` timed calls each, every round in a shuffled order (fixed seed) so that
    no choice always lands on the same product of a step (a step's products are not
    equally fast: the first after Adam finds a cold cache); :meth:`best` has the lowest
    median. Shared by the threads and Graphs of one adjacency tensor: each product claims
    its own slot of the schedule under a lock."""

    def __init__(self, choices: list, rounds: int) -> None:
        self.choices, self.rounds = choices, rounds
        shuffle = random.Random(0).sample
        n = len(choices)
        self.schedule = list(range(n)) + [i for _ in range(rounds) for i in shuffle(range(n), n)]
        self.claimed = self.recorded = 0
        self.seconds: list[list[float]] = [[] for _ in choices]
        self._lock = threading.Lock()

    def claim(self) -> Optional[int]:
        """The next slot of the schedule for a product to take, or None when all are taken."""
        with self._lock:
            if self.claimed >= len(self.schedule):
                return None
            self.claimed += 1
            return self.claimed - 1

    def choice(self, slot: int) -> Optional[tuple[str, int]]:
        """The choice a product in ``slot`` takes."""
        return self.choices[self.schedule[slot]]

    def record(self, slot: int, seconds: Optional[float]) -> None:
        """The time of the product in ``slot`` (None: it failed; the first slot of each
        choice is a warm-up and never counted)."""
        with self._lock:
            if seconds is not None and slot >= len(self.choices):
                self.seconds[self.schedule[slot]].append(seconds)
            self.recorded += 1

    def done(self) -> bool:
        return self.recorded >= len(self.schedule)

    def best(self) -> Optional[tuple[str, int]]:
        """The choice of the lowest median (a choice never timed counts as slowest)."""
        medians = [statistics.median(t) if t else float("inf") for t in self.seconds]
        return self.choices[medians.index(min(medians))]


def _bag(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, x: torch.Tensor):
    """Rows ``crow``'s bags of ``x``: ``out[r] = sum_j val[j] x[col[j]]`` for j in row r.

    Without grad mode ``x`` is detached: given a table that requires grad,
    ``embedding_bag`` runs its training variant (bag bookkeeping for a backward) even under
    ``no_grad``, as in inference and inside the propagation's autograd functions.
    """
    x = x if torch.is_grad_enabled() else x.detach()
    return F.embedding_bag(
        col, x, crow, mode="sum", per_sample_weights=val, include_last_offset=True
    )


def spmm(
    adj: Union[Graph, torch.Tensor], x: torch.Tensor, kernel: str = "auto"
) -> torch.Tensor:
    """One sparse-dense product ``adj @ x`` with the chosen kernel (differentiable in ``x``
    through the kernel's own autograd; :func:`propagate` has the faster symmetric backward).

    Args:
        adj: (N, N) sparse CSR tensor or a :class:`Graph` (in its computing order).
        x: (N, d) dense tensor of the same device, any floating dtype.
        kernel: ``"auto"``, ``"embedding_bag"`` or ``"sparse_mm"``.

    Returns:
        (N, d) dense tensor.
    """
    graph = Graph.wrap(adj)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor. Got {type(x).__name__}.")
    if x.dim() != 2 or x.shape[0] != graph.num_nodes or not x.is_floating_point():
        raise ValueError(
            f"x must be a floating (N, d) tensor with N = {graph.num_nodes}. "
            f"Got shape {tuple(x.shape)}, dtype {x.dtype}."
        )
    if x.device != graph.device:
        raise ValueError(f"x is on {x.device} but adj is on {graph.device}; they must match.")
    return graph.matmul(x, kernel)


