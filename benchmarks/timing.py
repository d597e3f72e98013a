"""Timing and result checks: errors against a reference, Timer medians, the triad ceiling."""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
import torch.utils.benchmark as tbench

from .hardware import synchronize

#: Relative tolerance of the result checks, by dtype; the absolute tolerance is this times
#: the largest magnitude of the reference (summation order differs between kernels).
TOLERANCE = {
    torch.float64: 1e-10,
    torch.float32: 1e-4,
    torch.float16: 1e-2,
    torch.bfloat16: 5e-2,
}


def tolerance(dtype: torch.dtype) -> float:
    return TOLERANCE.get(dtype, 1e-4)


def relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """``max |got - ref| / max |ref|`` in float64 (inf on a shape mismatch)."""
    got = torch.as_tensor(got).to(device=ref.device, dtype=torch.float64)
    ref = ref.to(torch.float64)
    if got.shape != ref.shape:
        return math.inf
    if not ref.numel():
        return 0.0
    scale = float(ref.abs().max())
    return float((got - ref).abs().max()) / max(scale, 1e-300)


def close(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> tuple[bool, float]:
    """Whether ``got`` is within ``dtype``'s tolerance of ``ref``; also its relative error.

    The check is ``allclose`` with ``rtol = tol`` and ``atol = tol * max|ref|``.
    """
    err = relative_error(got, ref)
    if not math.isfinite(err):
        return False, err
    got64 = torch.as_tensor(got).to(device=ref.device, dtype=torch.float64)
    ref64 = ref.to(torch.float64)
    tol = tolerance(dtype)
    scale = float(ref64.abs().max()) if ref64.numel() else 0.0
    return bool(torch.allclose(got64, ref64, rtol=tol, atol=tol * scale)), err


def time_it(fn: Callable[[], Any], min_run_time: float) -> dict[str, float]:
    """Median and IQR seconds of ``fn()`` by ``Timer.blocked_autorange`` on all torch threads.

    ``blocked_autorange`` warms up (its block-size estimate runs ``fn`` at least once) and
    synchronizes CUDA around each block.
    """
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"median_s": m.median, "iqr_s": m.iqr, "runs": len(m.times) * m.number_per_run}


def best_time(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Shortest wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    synchronize(device)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def triad_bandwidth(
    device: torch.device, numel: int = 2**25, repeats: int = 10
) -> dict[str, float]:
    """STREAM-like triad ``a = b + s * c`` on float32 arrays: best GB/s of ``repeats``.

    Bytes counted: 3 arrays x ``numel`` x 4 (read b, read c, write a), as STREAM does
    (write-allocate traffic not counted). Runs on torch's intra-op threads.
    """
    b = torch.rand(numel, device=device)
    c = torch.rand(numel, device=device)
    a = torch.empty_like(b)
    t = best_time(lambda: torch.add(b, c, alpha=3.0, out=a), repeats, device)
    moved = 3 * numel * 4
    return {"gbps": moved / t / 1e9, "array_mib": numel * 4 / 2**20, "best_s": t}
