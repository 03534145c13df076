"""Progress that works with and without a terminal.

On a TTY: a rich bar. Otherwise (cron, CI, ``| tee``): one plain line per ``every`` steps and at the end,
``<label>: <done>/<total> <unit> (<pct>%), <rate> <unit>/s, ETA <s>`` — so long work is never silent.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any


def _fmt_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class PlainProgress:
    """Plain progress lines for a non-terminal stream.

    Args:
        total: Number of steps.
        label: What is being done (``ingest``, ``classify``).
        unit: What a step is (``files``, ``items``).
        every: Print after at least this many steps since the last line (default: about every 10 %).
        stream: Where the lines go (default stderr).
        min_seconds: Also print when this long has passed since the last line.
    """

    def __init__(self, total: int, label: str, unit: str = "items", every: int | None = None,
                 stream: IO[str] | None = None, min_seconds: float = 30.0) -> None:
        self.total, self.label, self.unit = max(int(total), 0), label, unit
        self.every = every or max(1, self.total // 10)
        self.stream = stream or sys.stderr
        self.min_seconds = min_seconds
        self.done = 0
        self.started = self.last_time = time.perf_counter()
        self.last_done = 0

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = self.done / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_text = _fmt_seconds(eta) if eta != float("inf") else "?"
        return (f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), {rate:.1f} {self.unit}/s, "
                f"ETA {eta_text}")

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if (self.done - self.last_done >= self.every or now - self.last_time >= self.min_seconds
                or self.done >= self.total):
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self.last_done, self.last_time = self.done, now


def throughput(count: int, seconds: float, unit: str = "items") -> str:
    """``count`` per second for a summary line, with two significant digits below 10 (a short run of a few
    items would otherwise read "0 items/s")."""
    per_second = count / max(seconds, 1e-9)
    return f"{per_second:.2g} {unit}/s" if per_second < 10 else f"{per_second:.0f} {unit}/s"


def is_terminal(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
