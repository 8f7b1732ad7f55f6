"""Back-pressure for predictions: how many run at once in a worker process, how many may wait, and for
how long, before a prediction is answered 503 with Retry-After instead of waiting without end.

gunicorn bounds connections (`--backlog`, `--worker-connections`, `--threads`) and the time a worker may
hang (`--timeout`), but has no limit on requests waiting for the expensive part of a request, which is
what Ray Serve's `max_queued_requests` and Triton's queue policy give; `Admission` is that limit, written
here because neither gunicorn nor Django has one. It takes no settings: the web settings read them
(`Capacity.from_environ`) and `actiscope serve` writes them (`Capacity.environ`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

SLOTS, QUEUE, WAIT = "ACTISCOPE_PREDICT_SLOTS", "ACTISCOPE_PREDICT_QUEUE", "ACTISCOPE_PREDICT_WAIT_S"


@dataclass(frozen=True)
class Capacity:
    """Per worker process: `slots` predictions run at once, up to `queue` more wait at most `wait_s`
    seconds for one; a prediction beyond those is refused at once. `spare` threads stay free for the
    pages, the API's reads and the quick refusals, so that a full queue never delays them."""

    slots: int = 2
    queue: int = 8
    wait_s: float = 10.0
    spare: int = 4

    def __post_init__(self) -> None:
        if self.slots < 1 or self.queue < 0 or self.wait_s < 0:
            raise ValueError(
                f"predict slots must be at least 1, the queue and its wait at least 0 (got {self.slots}, "
                f"{self.queue}, {self.wait_s})"
            )

    @property
    def threads(self) -> int:
        """gunicorn's threads per worker: the running, the waiting and the spare requests."""
        return self.slots + self.queue + self.spare

    @property
    def retry_after(self) -> int:
        """Seconds a refused client should wait (the Retry-After header): a queued request's longest wait."""
        return max(1, math.ceil(self.wait_s))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Capacity:
        default = cls()
        return cls(
            slots=int(environ.get(SLOTS, default.slots)),
            queue=int(environ.get(QUEUE, default.queue)),
            wait_s=float(environ.get(WAIT, default.wait_s)),
        )

    def environ(self) -> dict[str, str]:
        """The variables that give a worker process this capacity (see `from_environ`)."""
        return {SLOTS: str(self.slots), QUEUE: str(self.queue), WAIT: f"{self.wait_s:g}"}


DEFAULT_CAPACITY = Capacity()


class Busy(Exception):
    """No slot for a prediction: the one line for the client, and when to try again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


class Admission:
    """The limit itself: `acquire` returns once a slot is taken, or raises `Busy` at once when the
    queue is full, or after `wait_s` seconds in it; every `acquire` is paired with a `release`."""

    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        self._slots = threading.BoundedSemaphore(capacity.slots)
        self._lock = threading.Lock()
        self._waiting = self._running = 0

    def acquire(self) -> None:
        if self._slots.acquire(blocking=False):
            self._started()
            return
        capacity = self.capacity
        with self._lock:
            full = self._waiting >= capacity.queue
            if not full:
                self._waiting += 1
        if full:
            raise self._full()
        try:
            taken = self._slots.acquire(timeout=capacity.wait_s)
        finally:
            with self._lock:
                self._waiting -= 1
        if not taken:
            raise Busy(
                f"busy: no prediction slot came free within {capacity.wait_s:g} s; "
                f"try again in {capacity.retry_after} s",
                capacity.retry_after,
            )
        self._started()

    def refuse_when_full(self) -> None:
        """Raise `Busy` now if every slot is taken and the queue is full: a cheap look before the
        request's upload is read, so that a refusal costs no upload (`acquire` still decides)."""
        with self._lock:
            full = self._running >= self.capacity.slots and self._waiting >= self.capacity.queue
        if full:
            raise self._full()

    def _full(self) -> Busy:
        capacity = self.capacity
        return Busy(
            f"busy: {capacity.slots} predictions running and {capacity.queue} waiting in this worker; "
            f"try again in {capacity.retry_after} s",
            capacity.retry_after,
        )

    def release(self) -> None:
        with self._lock:
            self._running -= 1
        self._slots.release()

    def _started(self) -> None:
        with self._lock:
            self._running += 1

    @property
    def waiting(self) -> int:
        return self._waiting

    def state(self) -> dict[str, int]:
        """What /readyz reports: predictions running and waiting now, and the limits."""
        with self._lock:
            running, waiting = self._running, self._waiting
        return {
            "running": running,
            "waiting": waiting,
            "slots": self.capacity.slots,
            "queue": self.capacity.queue,
        }
