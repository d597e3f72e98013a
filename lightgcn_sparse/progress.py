"""A dependency-free progress display for long work (training epochs, evaluation)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import torch


class Progress:
    """Shows ``epoch e/E [#####.....] b/B loss 0.1234`` and one summary line per epoch.

    On a terminal the bar is redrawn in place (at most 10 times a second); elsewhere (logs,
    CI, a pipe) a plain line is printed at most every ``interval`` seconds within an epoch,
    so a long epoch still shows it is moving. ``enabled=False`` prints nothing. The running
    loss is shown only when it lives on the CPU: reading a GPU tensor would stall the GPU.
    """

    def __init__(
        self,
        total_epochs: int,
        enabled: bool = True,
        stream: TextIO | None = None,
        keys: tuple[str, ...] = ("val_loss",),
        interval: float = 30.0,
    ):
        self.total_epochs = total_epochs
        self.keys = keys
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self._last_draw = time.perf_counter()
        self._drawn = 0  # length of the bar line on screen, to blank it out when replaced

    def step(
        self, epoch: int, batch: int, total_batches: int, total: Any = None, count: int = 0
    ) -> None:
        """Report progress within an epoch (rate-limited; see the class docstring)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw < (0.1 if self.tty else self.interval):
            return
        self._last_draw = now
        loss = ""
        if count and total is not None:
            if not isinstance(total, torch.Tensor) or total.device.type == "cpu":
                loss = f" loss {float(total) / count:.4f}"
        if self.tty:
            width = 20
            done = int(width * batch / max(total_batches, 1))
            bar = "#" * done + "." * (width - done)
            line = f"epoch {epoch}/{self.total_epochs} [{bar}] {batch}/{total_batches}{loss}"
            self.stream.write("\r" + line.ljust(self._drawn))
            self._drawn = len(line)
        else:
            self.stream.write(
                f"epoch {epoch}/{self.total_epochs}: batch {batch}/{total_batches}{loss}\n"
            )
        self.stream.flush()

    def epoch_end(self, epoch: int, record: dict, seconds: float) -> None:
        """Print the epoch summary on its own line."""
        if not self.enabled:
            return
        self._last_draw = time.perf_counter()
        parts = [f"epoch {epoch}/{self.total_epochs}", f"loss {record['loss']:.4f}"]
        parts += [f"{key} {record[key]:.4f}" for key in self.keys if key in record]
        parts.append(f"{seconds:.2f}s")
        if record.get("improved"):
            parts.append("*")
        self.line("  ".join(parts))

    def line(self, text: str) -> None:
        """Print ``text`` on its own line (replacing a bar on a terminal)."""
        if not self.enabled:
            return
        if self.tty:
            text = "\r" + text.ljust(self._drawn)
            self._drawn = 0
        self.stream.write(text + "\n")
        self.stream.flush()
