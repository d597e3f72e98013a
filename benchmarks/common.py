"""Shared pieces of the benchmarks: hardware line, graphs, timing, peak memory, tables, JSON.

Every benchmark follows the same order: build the inputs, check each contender computes the
same result as ours, time the ones that agree, print one table, write JSON if asked.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import gc
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np
import torch
import torch.utils.benchmark as tbench

# ---------------------------------------------------------------------------------------------
# Devices and the hardware line


def resolve_device(name: str) -> torch.device:
    """Parse ``--device``; fail with one clear line (no traceback) when CUDA is absent."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        built = "built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        raise click.ClickException(
            f"--device {name}: CUDA is not available here (torch {torch.__version__}, {built})."
        )
    return dev


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or whatever ``platform`` knows."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware(device: torch.device | None = None) -> dict[str, Any]:
    """What the numbers were measured on (goes into every JSON file)."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover - scipy is a project dependency
        info["scipy"] = None
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def hardware_line(info: dict[str, Any]) -> str:
    gpu = info["gpu"] or "no GPU used"
    return (
        f"{info['date'][:10]} | CPU: {info['cpu']} ({info['logical_cpus']} logical CPUs, "
        f"torch threads {info['torch_threads']}) | GPU: {gpu} | torch {info['torch']} | "
        f"numpy {info['numpy']} | scipy {info['scipy']} | Python {info['python']}"
    )


def set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise click.BadParameter(f"must be >= 1. Got {threads}.", param_hint="--threads")
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Graphs


def zipf_ranks(n: int, exponent: float, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` ranks in ``[0, n)`` with ``P(rank r) ~ (r + 1) ** -exponent`` (continuous inverse CDF).

    The continuous power law on ``[1, n + 1)`` is sampled in closed form and floored, which
    is Zipf-like without a search over ``n`` cumulative weights.
    """
    q = rng.random(m)
    s = float(exponent)
    if abs(s - 1.0) < 1e-9:
        x = np.exp(q * np.log(n + 1.0))
    else:
        x = (1.0 + q * ((n + 1.0) ** (1.0 - s) - 1.0)) ** (1.0 / (1.0 - s))
    return np.minimum(x.astype(np.int64) - 1, n - 1)


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` by sort + mask (numpy 2.4's ``unique`` is far slower on 10M int64)."""
    keys = np.sort(keys)
    if keys.size:
        keep = np.empty(keys.size, dtype=bool)
        keep[0] = True
        np.not_equal(keys[1:], keys[:-1], out=keep[1:])
        keys = keys[keep]
    return keys


def powerlaw_bipartite(
    num_users: int,
    num_items: int,
    num_edges: int,
    *,
    item_exponent: float = 0.8,
    user_exponent: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic implicit-feedback graph: ``num_edges`` distinct (user, item) pairs.

    Item popularity is Zipf-like (the item of popularity rank ``r`` is drawn with weight
    ``r ** -item_exponent``) and user activity likewise with ``user_exponent``; ranks are
    assigned to ids by a random permutation, so popular ids are scattered as in real data.
    Duplicate pairs are dropped and redrawn until exactly ``num_edges`` distinct pairs exist.

    Returns:
        (E,) int64 users and (E,) int64 items, sorted user-major.
    """
    if num_users < 1 or num_items < 1 or num_edges < 1:
        raise ValueError(
            f"users, items and edges must be >= 1. Got {num_users}, {num_items}, {num_edges}."
        )
    if num_edges > 0.5 * num_users * num_items:
        raise ValueError(
            f"edges must be at most half of users * items = {num_users * num_items} for a "
            f"sparse graph. Got {num_edges}."
        )
    rng = np.random.default_rng(seed)
    uids, iids = rng.permutation(num_users), rng.permutation(num_items)
    keys = np.empty(0, dtype=np.int64)
    for rounds in range(1000):
        missing = num_edges - keys.size
        if missing <= 0:
            break
        m = int(missing * 1.15) + 64
        if rounds < 20:
            u = uids[zipf_ranks(num_users, user_exponent, m, rng)]
            i = iids[zipf_ranks(num_items, item_exponent, m, rng)]
        else:  # the popular pairs are taken: fill the rest uniformly
            u, i = rng.integers(0, num_users, m), rng.integers(0, num_items, m)
        keys = _sorted_unique(np.concatenate([keys, u.astype(np.int64) * num_items + i]))
    if keys.size > num_edges:
        keys = np.sort(rng.choice(keys, num_edges, replace=False))
    return keys // num_items, keys % num_items


def scaled_shape(num_edges: int) -> tuple[int, int]:
    """Users and items for a synthetic graph of ``num_edges``: 20 edges per user, 100 per item.

    At 20M edges that is 1M users and 200k items; smaller graphs scale down linearly (tiny
    ones get enough items to stay at most 25% dense).
    """
    users = max(8, num_edges // 20)
    return users, max(8, num_edges // 100, -(-4 * num_edges // users))


def ml100k_path() -> Path | None:
    """Path of ``ml-100k.inter`` inside an installed recbole wheel (recbole is not imported)."""
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).endswith("ml-100k/ml-100k.inter"):
            path = Path(dist.locate_file(f))
            return path if path.is_file() else None
    return None


def load_ml100k(real: bool = True) -> tuple[np.ndarray, np.ndarray, int, int, str]:
    """The ml-100k graph: real MovieLens-100K when recbole's copy is installed, else synthetic.

    Returns:
        users, items (int64, contiguous ids), num_users, num_items and a source label.
    """
    path = ml100k_path() if real else None
    if path is not None:
        raw = np.loadtxt(path, delimiter="\t", skiprows=1, usecols=(0, 1), dtype=np.int64)
        uid, u = np.unique(raw[:, 0], return_inverse=True)
        iid, i = np.unique(raw[:, 1], return_inverse=True)
        key = _sorted_unique(u.astype(np.int64) * iid.size + i)
        return key // iid.size, key % iid.size, uid.size, iid.size, "ml-100k (real, recbole copy)"
    u, i = powerlaw_bipartite(943, 1682, 100_000, item_exponent=0.8, user_exponent=0.5)
    return u, i, 943, 1682, "ml-100k-shaped (synthetic)"


# ---------------------------------------------------------------------------------------------
# Timing and tolerances

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


def close(got: torch.Tensor, ref: torch.Tensor) -> tuple[bool, float]:
    """``allclose`` with the dtype's tolerance; also the max abs error relative to max|ref|."""
    got = torch.as_tensor(got).to(device=ref.device, dtype=torch.float64)
    ref64 = ref.to(torch.float64)
    if got.shape != ref64.shape:
        return False, math.inf
    tol = tolerance(ref.dtype)
    scale = float(ref64.abs().max()) if ref64.numel() else 0.0
    err = float((got - ref64).abs().max()) / max(scale, 1e-300) if ref64.numel() else 0.0
    ok = bool(torch.allclose(got, ref64, rtol=tol, atol=tol * scale))
    return ok, err


def time_it(fn: Callable[[], Any], min_run_time: float) -> dict[str, float]:
    """Median and IQR seconds of ``fn()`` by ``Timer.blocked_autorange`` on all torch threads.

    ``blocked_autorange`` warms up (its block-size estimate runs ``fn`` at least once) and
    synchronizes CUDA around each block.
    """
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {
        "median_s": m.median,
        "iqr_s": m.iqr,
        "runs": len(m.times) * m.number_per_run,
    }


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


# ---------------------------------------------------------------------------------------------
# Memory

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{field} not in {_STATUS}")
    return int(match.group(1))


def reset_peak_rss() -> bool:
    """Reset the kernel's peak resident set (VmHWM) to the current one; False if unsupported.

    Linux only (``/proc/self/clear_refs``, value 5). Note that this also resets the
    high-water mark ``getrusage`` reports as ``ru_maxrss``.
    """
    try:
        _CLEAR_REFS.write_text("5")
        _status_kib("VmHWM")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """The kernel's peak resident set (VmHWM) of this process in bytes, None if unknown."""
    try:
        return _status_kib("VmHWM") * 1024
    except OSError:
        return None


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """``gc.collect()`` and glibc ``malloc_trim(0)``: free heap pages stop being resident.

    Then memory a call reuses from malloc's free lists is faulted in again and counted in
    its peak resident set, as if freshly allocated.
    """
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


CPU_PEAK_METHOD = (
    "CPU peak = VmHWM - VmRSS around the first (checked) call, Linux: gc + malloc_trim(0) "
    "first so that reused heap pages count, VmHWM reset via /proc/self/clear_refs"
)
CUDA_PEAK_METHOD = (
    "CUDA peak = torch.cuda.max_memory_allocated - memory_allocated before the first call"
)


def peak_memory(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Bytes of memory ``fn()`` needs above what was allocated before it (None if unknown).

    CUDA: :func:`torch.cuda.max_memory_allocated` after a reset, minus the memory allocated
    before. CPU: the kernel's peak resident set (VmHWM), reset just before the call through
    ``/proc/self/clear_refs``, minus the resident set (VmRSS) before it. The result of ``fn``
    is dropped inside the measurement, so what it returns counts in the peak.
    """
    release_free_memory()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    before = rss_bytes()
    if before is None or not reset_peak_rss():
        return None
    fn()
    peak = peak_rss_bytes()
    return None if peak is None else max(0, peak - before)


def max_rss_bytes() -> int:
    """``ru_maxrss`` of this process in bytes (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def rss_bytes() -> int | None:
    try:
        return _status_kib("VmRSS") * 1024
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Output


def fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}" if unit == "GiB" else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


def fmt_count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table (Markdown pipe syntax, so it pastes into README.md)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if not path:
        return
    out = Path(path)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    click.echo(f"wrote {out}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (torch.dtype, torch.device, Path)):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def pyg_available() -> tuple[bool, str]:
    """Whether ``torch_geometric`` imports; the note to print when it does not."""
    try:
        import torch_geometric  # noqa: F401
    except Exception as err:  # ImportError, or a broken install
        return False, f"torch_geometric not importable ({type(err).__name__}): PyG skipped."
    return True, ""
