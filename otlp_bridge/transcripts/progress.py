"""A one-line progress bar on a terminal (bytes read of the total), silent anywhere else."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_WIDTH = 30
_INTERVAL = 0.1  # seconds between redraws


class Progress:
    def __init__(self, total_bytes: int, stream: TextIO, *, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(total_bytes, 1)
        self.done = 0
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.clock = clock
        self._drawn = float("-inf")

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self.enabled and self.clock() - self._drawn >= _INTERVAL:
            self._draw()

    def _draw(self) -> None:
        ratio = min(self.done / self.total, 1.0)
        filled = int(ratio * _WIDTH)
        self.stream.write(f"\r[{'#' * filled}{'.' * (_WIDTH - filled)}] {ratio * 100:5.1f}% "
                          f"{self.done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB")
        self.stream.flush()
        self._drawn = self.clock()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
