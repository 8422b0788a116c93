"""Terminal feedback on stderr: a progress bar with rate and ETA, and a status line.

Both draw only when their stream is a terminal (so pipes, files, ``--json`` consumers and
CI logs see nothing) and erase themselves before other output is printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

__all__ = ["Progress", "Status", "format_duration"]


def format_duration(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour on), as tqdm shows times; ``?`` if unknown."""
    if not seconds >= 0 or seconds == float("inf"):
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class _Line:
    """One redrawable line on a terminal stream (the shared part of the two widgets)."""

    def __init__(self, enabled: bool, stream: IO[str] | None) -> None:
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(enabled) and bool(isatty())
        self._drawn = False
        self._last = ""

    def _draw(self, text: str) -> None:
        self._last = text
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Erase the line (call before printing anything else)."""
        if self.enabled and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def redraw(self) -> None:
        """Draw the last text again after :meth:`clear`."""
        if self.enabled and self._last and not self._drawn:
            self.stream.write(self._last)
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        """Erase the line for good (later :meth:`redraw` calls do nothing)."""
        self.clear()
        self._last = ""


class Progress(_Line):
    """``[#####.....] 37/100 [00:12<00:20, 3.05 epoch/s]  loss 1.2e-03``.

    Elapsed time counts from construction; the rate is units done per second so far and
    the ETA the remaining units at that rate (``?`` before the first unit is done).
    """

    def __init__(
        self,
        total: int,
        enabled: bool = True,
        stream: IO[str] | None = None,
        *,
        unit: str = "epoch",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(enabled, stream)
        self.total = max(total, 1)
        self.unit = unit
        self._clock = clock
        self._started = clock()

    def update(self, done: int, loss: float | None = None, width: int = 30) -> None:
        """Redraw for ``done`` of ``total`` units, with the latest ``loss`` if given."""
        if not self.enabled:
            return
        filled = int(width * min(done, self.total) / self.total)
        bar = "#" * filled + "." * (width - filled)
        elapsed = max(self._clock() - self._started, 0.0)
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        # slow units read better as seconds per unit, as tqdm shows them
        slow = 0 < rate < 1
        speed = f"{1 / rate:.2f} s/{self.unit}" if slow else f"{rate:.2f} {self.unit}/s"
        timing = f"[{format_duration(elapsed)}<{format_duration(eta)}, {speed}]"
        tail = "" if loss is None else f"  loss {loss:.3e}"
        self._draw(f"[{bar}] {done}/{self.total} {timing}{tail}")


class Status(_Line):
    """``bench: [2/4] small graph: steps per second (00:14)``: what a long command is doing.

    :meth:`step` names the next phase; the elapsed time is that of the whole command.
    """

    def __init__(
        self,
        prefix: str,
        total: int | None = None,
        enabled: bool = True,
        stream: IO[str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(enabled, stream)
        self.prefix = prefix
        self.total = total
        self.count = 0
        self._clock = clock
        self._started = clock()

    def step(self, what: str) -> None:
        """Show that the next phase, ``what``, has started."""
        self.count += 1
        if not self.enabled:
            return
        counter = f"[{self.count}/{self.total}] " if self.total else ""
        elapsed = format_duration(self._clock() - self._started)
        self._draw(f"{self.prefix}: {counter}{what} ({elapsed} elapsed)")
