"""What a benchmark runs on: the device, the thread count, the machine and software line."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch

from lightgcn_sparse._checks import check_device


def resolve_device(name: str) -> torch.device:
    """Parse ``--device`` with the package's check; one clear line (no traceback) if absent."""
    try:
        return check_device(name)
    except ValueError as err:
        built = "built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        raise click.ClickException(
            f"--device {name}: {err} (torch {torch.__version__}, {built})"
        ) from err


def set_threads(threads: Optional[int]) -> None:
    """``torch.set_num_threads(threads)`` unless None."""
    if threads is not None:
        if threads < 1:
            raise click.BadParameter(f"must be >= 1. Got {threads}.", param_hint="--threads")
        torch.set_num_threads(threads)


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


def hardware(device: Optional[torch.device] = None) -> dict[str, Any]:
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
    import scipy

    info["scipy"] = scipy.__version__
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


def start(device: str, threads: Optional[int]) -> tuple[torch.device, dict[str, Any]]:
    """Every benchmark's opening: threads, device, the hardware line printed, the load noted.

    Returns the device and the hardware record (with ``load_before``, the 1-minute load).
    """
    set_threads(threads)
    dev = resolve_device(device)
    info = hardware(dev)
    info["load_before"] = os.getloadavg()[0]
    click.echo(hardware_line(info))
    return dev, info


def finish(info: dict[str, Any]) -> str:
    """Note the load after the run in ``info``; the line that reports both loads."""
    info["load_after"] = os.getloadavg()[0]
    return (
        f"load average (1 min) before/after: {info['load_before']:.2f} / "
        f"{info['load_after']:.2f} on {info['logical_cpus']} logical CPUs"
    )


def pyg_available() -> tuple[bool, str]:
    """Whether ``torch_geometric`` imports; the note to print when it does not."""
    try:
        import torch_geometric  # noqa: F401
    except Exception as err:  # ImportError, or a broken install
        return False, f"torch_geometric not importable ({type(err).__name__}): PyG skipped."
    return True, ""
