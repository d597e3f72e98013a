"""Output: human units, Markdown tables, target lines, and the JSON file of a run."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch

from lightgcn_sparse.checkpoint import atomic_write_text


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_bytes(n: Optional[float]) -> str:
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


def target(graph: str, what: str, goal: float, measured: float, at_least: bool = True) -> dict:
    """One target of an issue, measured: ``measured >= goal`` (or ``<=`` when not at_least)."""
    met = measured >= goal if at_least else measured <= goal
    return {"graph": graph, "target": what, "goal": goal, "at_least": at_least,
            "measured": measured, "met": bool(met)}  # fmt: skip


def echo_targets(targets: Sequence[dict]) -> None:
    for t in targets:
        sign = ">=" if t.get("at_least", True) else "<="
        verdict = "met" if t["met"] else "NOT met"
        click.echo(
            f"target {t['graph']}: {t['target']} {sign} {t['goal']:g}: "
            f"{t['measured']:.2f} ({verdict})"
        )


def write_json(path: Optional[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically with the package's writer (nothing if None)."""
    if not path:
        return
    text = json.dumps(payload, indent=2, default=_json_default) + "\n"
    click.echo(f"wrote {atomic_write_text(path, text)}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, (torch.dtype, torch.device, Path)):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
