"""A one-line progress bar on stderr for long computations (sampling, bootstrap)."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType


def interactive() -> bool:
    """Whether progress should show by default: stderr is a terminal, or a notebook runs."""
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class ProgressBar:
    """``label [#####-----] done/total, elapsed``, redrawn in place at most 10 times a
    second; thread-safe :meth:`update`.  Shows nothing when ``enabled`` is False."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, width: int = 30):
        self.total, self.label, self.enabled, self.width = max(int(total), 1), label, enabled, width
        self.done = 0
        self._start = time.perf_counter()
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, done: int) -> None:
        """Set the number of completed steps (redraws when due)."""
        with self._lock:
            self.done = min(int(done), self.total)
            now = time.perf_counter()
            if self.enabled and (now - self._last >= 0.1 or self.done == self.total):
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(
            f"\r{self.label} [{bar}] {self.done}/{self.total}, {now - self._start:.1f} s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        """End the line (once)."""
        if self.enabled:
            self._draw(time.perf_counter())
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.enabled = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
