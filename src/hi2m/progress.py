"""Progress of long work on stderr: a bar with its rate and ETA, redrawn in place, when stderr is a
terminal; nothing but the caller's own per-item lines when it is not (a log file gets one line per item,
not hundreds of redraws); nothing at all with ``quiet``. No dependencies."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def clock(seconds: float) -> str:
    """Seconds as h:mm:ss or m:ss."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``update(done)`` moves the bar (``done`` of ``total`` units, e.g. seconds of video or clips);
    ``line(text)`` prints a permanent line (above the bar on a terminal, alone otherwise, suppressed
    with ``quiet`` unless ``always``); ``close()`` clears the bar."""

    def __init__(self, total: float, label: str = "", unit: str = "", stream: TextIO | None = None,
                 quiet: bool = False, tty: bool | None = None, min_interval: float = 0.2, width: int = 24):
        self.stream = stream or sys.stderr
        self.total, self.label, self.unit = float(total), label, unit
        self.quiet = quiet
        self.tty = (bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty) and not quiet
        self.min_interval, self.width = min_interval, width
        self.start = time.perf_counter()
        self.done = 0.0
        self._drawn = 0.0
        self._shown = False

    def reset(self, total: float, label: str = "") -> None:
        """Start over for the next item (e.g. the next video), keeping the stream."""
        self.clear()
        self.total, self.label, self.done, self.start = float(total), label, 0.0, time.perf_counter()

    def update(self, done: float, note: str = "") -> None:
        self.done = done
        now = time.perf_counter()
        if self.tty and (now - self._drawn >= self.min_interval or done >= self.total):
            self._drawn = now
            self.stream.write("\r" + self.render(now, note) + "\x1b[K")
            self.stream.flush()
            self._shown = True

    def render(self, now: float | None = None, note: str = "") -> str:
        """The bar's text: label, bar, done / total, rate, ETA."""
        elapsed = (now or time.perf_counter()) - self.start
        share = min(1.0, self.done / self.total) if self.total > 0 else 0.0
        filled = int(round(share * self.width))
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 and self.total > 0 else None
        amount = (f"{clock(self.done)} / {clock(self.total)}" if self.unit == "s"
                  else f"{self.done:.0f}/{self.total:.0f}{' ' + self.unit if self.unit else ''}")
        speed = f"{rate:.1f}x real time" if self.unit == "s" else f"{rate:.2f} {self.unit or 'items'}/s"
        text = (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {amount}, {speed}, "
                f"ETA {clock(eta) if eta is not None else '?'}")
        return text + (f" {note}" if note else "")

    def line(self, text: str, always: bool = False) -> None:
        if self.quiet and not always:
            return
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def close(self) -> None:
        self.clear()
