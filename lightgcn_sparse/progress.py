"""A dependency-free progress line for training epochs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Shows ``epoch e/E [#####.....] b/B loss 0.1234 ndcg@20 0.3012 1.2s``.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) one line is printed per
    epoch. ``enabled=False`` prints nothing.
    """

    def __init__(
        self,
        total_epochs: int,
        enabled: bool = True,
        stream: TextIO | None = None,
        keys: tuple[str, ...] = ("val_loss",),
    ):
        self.total_epochs = total_epochs
        self.keys = keys
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._drawn = 0  # length of the bar line on screen, to blank it out when replaced

    def step(self, epoch: int, batch: int, total_batches: int, loss: float) -> None:
        """Redraw the bar mid-epoch (terminals only, at most 10 times a second)."""
        now = time.perf_counter()
        if not (self.enabled and self.tty) or now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = 20
        done = int(width * batch / max(total_batches, 1))
        bar = "#" * done + "." * (width - done)
        line = f"epoch {epoch}/{self.total_epochs} [{bar}] {batch}/{total_batches} loss {loss:.4f}"
        self.stream.write("\r" + line.ljust(self._drawn))
        self._drawn = len(line)
        self.stream.flush()

    def epoch_end(self, epoch: int, record: dict) -> None:
        """Print the epoch summary on its own line."""
        if not self.enabled:
            return
        parts = [f"epoch {epoch}/{self.total_epochs}", f"loss {record['loss']:.4f}"]
        parts += [f"{key} {record[key]:.4f}" for key in self.keys if key in record]
        parts.append(f"{record['time']:.2f}s")
        if record.get("improved"):
            parts.append("*")
        line = "  ".join(parts)
        if self.tty:
            line = "\r" + line.ljust(self._drawn)
            self._drawn = 0
        self.stream.write(line + "\n")
        self.stream.flush()
