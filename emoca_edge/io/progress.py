"""A dependency-free progress bar on stderr: done/total, percent, frames per second and ETA."""
from __future__ import annotations

import sys
import time


def _fmt_time(s: float) -> str:
    s = int(max(0, round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class ProgressBar:
    """Redraws one line at most every ``interval`` seconds. ``total`` None: count and rate only."""

    def __init__(self, total: int | None, stream=None, width: int = 28, interval: float = 0.2):
        self.total = total if total and total > 0 else None
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval = interval
        self._t0 = time.perf_counter()
        self._last = 0.0
        self.done = 0

    def line(self, done: int) -> str:
        el = time.perf_counter() - self._t0
        rate = done / el if el > 0 else 0.0
        if self.total:
            frac = min(1.0, done / self.total)
            fill = int(round(frac * self.width))
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            eta_s = _fmt_time(eta) if eta == eta else "?"
            return (f"[{'#' * fill}{'.' * (self.width - fill)}] {done}/{self.total} {frac * 100:5.1f}% "
                    f"{rate:6.1f} it/s ETA {eta_s} elapsed {_fmt_time(el)}")
        return f"{done} items {rate:6.1f} it/s elapsed {_fmt_time(el)}"

    def update(self, summary) -> None:
        self.done = summary.items
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self.stream.write("\r" + self.line(self.done))
            self.stream.flush()

    def finish(self, summary) -> None:
        self.done = summary.items
        self.stream.write("\r" + self.line(self.done) + "\n")
        self.stream.flush()
