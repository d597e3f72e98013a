"""Peak memory of a call: the kernel's resident-set high-water mark (CPU) or torch's (CUDA)."""

from __future__ import annotations

import ctypes
import gc
import re
import resource
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")

CPU_PEAK_METHOD = (
    "CPU peak = VmHWM - VmRSS around the first (checked) call, Linux: gc + malloc_trim(0) "
    "first so that reused heap pages count, VmHWM reset via /proc/self/clear_refs"
)
CUDA_PEAK_METHOD = (
    "CUDA peak = torch.cuda.max_memory_allocated - memory_allocated before the first call"
)


def method(device: torch.device) -> str:
    """How :func:`peak_memory` measures on ``device``."""
    return CUDA_PEAK_METHOD if device.type == "cuda" else CPU_PEAK_METHOD


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


def peak_rss_bytes() -> Optional[int]:
    """The kernel's peak resident set (VmHWM) of this process in bytes, None if unknown."""
    try:
        return _status_kib("VmHWM") * 1024
    except OSError:
        return None


def rss_bytes() -> Optional[int]:
    try:
        return _status_kib("VmRSS") * 1024
    except OSError:
        return None


def max_rss_bytes() -> int:
    """``ru_maxrss`` of this process in bytes (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def release_free_memory() -> None:
    """``gc.collect()`` and glibc ``malloc_trim(0)``: free heap pages stop being resident.

    Then memory a call reuses from malloc's free lists is faulted in again and counted in
    its peak resident set, as if freshly allocated.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def peak_memory(fn: Callable[[], Any], device: torch.device) -> Optional[int]:
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
