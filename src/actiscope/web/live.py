"""The Live page's sliding windows for video models: the last frames each browser sent, per session.

A window is a file under the data folder, not a worker's memory: gunicorn spreads one browser's requests
over its workers, and each must see the same window. A page has at most one request in flight, so a
session's file has one writer at a time; it is replaced atomically, read without pickle, and dropped once
the browser has been quiet for `idle_s` (or the model it was collected for is no longer served).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np

# what live.js sends: a UUID (or a random number's digits in an old browser)
SESSION = re.compile(r"[A-Za-z0-9-]{8,64}")
IDLE_S = 120.0


class BadSession(ValueError):
    pass


class LiveWindows:
    def __init__(self, directory: Path, *, idle_s: float = IDLE_S) -> None:
        self.directory, self.idle_s = directory, idle_s

    def push(self, session: str, model: str, frame: np.ndarray, length: int) -> np.ndarray:
        """Add `frame` (S, S, 3 uint8) to `session`'s window for `model` (the served package and its
        version) and return the window's last `length` frames, oldest first: (n <= length, S, S, 3)."""
        if not SESSION.fullmatch(session):
            raise BadSession(
                f"session {session[:80]!r}: a video model's Live page sends one (8-64 letters, digits, -)"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{session}.npz"
        window = np.concatenate([self._read(path, model, frame.shape), frame[None]])[-length:]
        partial = path.with_name(f".{session}.{os.getpid()}.npz")
        np.savez(partial, frames=window, model=np.array(model))
        os.replace(partial, path)
        self._expire()
        return window

    def _read(self, path: Path, model: str, shape: tuple[int, ...]) -> np.ndarray:
        empty = np.empty((0, *shape), np.uint8)
        try:
            with np.load(path, allow_pickle=False) as saved:
                frames, owner = saved["frames"], str(saved["model"])
        except (OSError, ValueError, KeyError):  # none yet, or a file this code did not write
            return empty
        fresh = time.time() - path.stat().st_mtime < self.idle_s
        return frames if fresh and owner == model and frames.shape[1:] == shape else empty

    def _expire(self) -> None:
        cutoff = time.time() - self.idle_s
        for stale in self.directory.glob("*.npz"):
            try:
                if stale.stat().st_mtime < cutoff:
                    stale.unlink()
            except FileNotFoundError:  # another worker expired it first
                pass
