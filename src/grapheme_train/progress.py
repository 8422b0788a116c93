"""A one-line progress bar on stderr, drawn only on a terminal."""

from __future__ import annotations

import sys
from typing import IO


class Progress:
    """``[#####.....] 37/100  loss 1.2e-03``; :meth:`clear` before printing other lines."""

    def __init__(self, total: int, enabled: bool = True, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = max(total, 1)
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = enabled and isatty()
        self._drawn = False
        self._last = ""

    def update(self, done: int, loss: float | None = None, width: int = 30) -> None:
        if not self.enabled:
            return
        filled = int(width * min(done, self.total) / self.total)
        bar = "#" * filled + "." * (width - filled)
        tail = "" if loss is None else f"  loss {loss:.3e}"
        self._last = f"[{bar}] {done}/{self.total}{tail}"
        self.stream.write("\r\033[K" + self._last)
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def redraw(self) -> None:
        if self.enabled and self._last and not self._drawn:
            self.stream.write(self._last)
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        """Erase the bar for good (later :meth:`redraw` calls do nothing)."""
        self.clear()
        self._last = ""
