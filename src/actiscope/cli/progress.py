"""Progress of a long step (`evaluate`, `predict`, `data inspect`): a tqdm bar on a terminal, and
without one (nohup, CI, a container) a plain line every few seconds through the log.

By hand because tqdm, writing to a file, redraws its bar with carriage returns: a log then holds one
very long line at the end instead of lines a person can follow while it runs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

log = logging.getLogger("actiscope")
EVERY_S = 5.0  # seconds between two lines without a terminal


class Progress:
    """`what` done so far, in `unit`s (singular): call it with (done, total), or `update(n)` when the
    total was given here. Use it as a context manager (the bar is closed at the end)."""

    def __init__(
        self,
        what: str,
        unit: str,
        total: int | None = None,
        *,
        stream: IO[str] | None = None,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.unit, self.total = what, unit, total
        self.stream = stream if stream is not None else sys.stderr
        self.every_s, self.clock = every_s, clock
        self.done = 0
        self.started = self._shown = clock()
        self._bar: Any = None  # tqdm's, made when the total is known (on a terminal only)

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        self.update(done - self.done)

    def update(self, n: float = 1, /) -> None:
        self.done += int(n)
        if self.stream.isatty():
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=self.total, desc=self.what, unit=self.unit, file=self.stream, leave=False
                )
            self._bar.update(int(n))
            return
        now = self.clock()
        if now - self._shown >= self.every_s:
            self._shown = now
            log.info(self.line(now))

    def line(self, now: float) -> str:
        """e.g. "evaluate: 320/900 images (36%), 41.2 images/s, about 14 s left"."""
        rate = self.done / max(now - self.started, 1e-9)
        units = f"{self.unit}s"
        if not self.total:
            return f"{self.what}: {self.done} {units}, {rate:.1f} {units}/s"
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        return (
            f"{self.what}: {self.done}/{self.total} {units} ({self.done / self.total:.0%}), "
            f"{rate:.1f} {units}/s, about {left:.0f} s left"
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
