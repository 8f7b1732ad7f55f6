"""Decoding files in background processes while the model runs, through memory they share with us.

A standard-library process pool rather than torch's DataLoader, which would import torch (2.7 s of
start-up here) for an ONNX model.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from actiscope.data.images import Box
from actiscope.errors import ActiscopeError, MediaReadError
from actiscope.predict.preprocess import Preprocessor

DecodedBatch = tuple[list[int], np.ndarray, dict[int, str]]  # indices, uint8 pixels of the readable, errors
_Decoded = tuple[int, dict[int, str]]  # how many were readable, {index: error}
_Job = tuple[int, int, int, Future[_Decoded]]  # first index, batch size, slot, the decoding
_Chunk = list[tuple[Path, Box | None]]  # the files of one batch and their person boxes


def decoded_batches(
    paths: Sequence[Path],
    preprocess: Preprocessor,
    batch_size: int = 32,
    workers: int = 2,
    *,
    boxes: Sequence[Box | None] | None = None,
) -> Generator[DecodedBatch, None, None]:
    """(indices, uint8 pixels of the readable files, {index: error}) per batch of `paths`, in order.
    `boxes`: each file's person box (None where none is known), for a model trained on person crops.

    `workers` processes decode at the lowest CPU priority, at most two batches each ahead: inference
    keeps the cores it needs, decoding takes what it leaves, and memory stays bounded however many
    files there are. They write into memory shared with this process, so no pixels are pickled through
    a pipe. 0 (or a system without fork) decodes here, between batches.
    """
    if boxes is not None and len(boxes) != len(paths):
        raise ValueError(f"{len(boxes)} boxes for {len(paths)} files")
    items = list(zip(paths, boxes if boxes is not None else [None] * len(paths), strict=True))
    jobs = ((start, items[start : start + batch_size]) for start in range(0, len(items), batch_size))
    if workers <= 0 or "fork" not in multiprocessing.get_all_start_methods():
        for start, chunk in jobs:
            out = np.empty((len(chunk), *preprocess.shape), np.uint8)
            count, errors = _decode_into(out, preprocess, start, chunk)
            yield list(range(start, start + len(chunk))), out[:count], errors
        return
    ahead = 2 * workers
    slots = _Slots(ahead + 1, batch_size, preprocess.shape)  # the batches in flight and the one being taken
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker, initargs=(slots,)
    )
    pending: deque[_Job] = deque()
    try:
        for n, (start, chunk) in enumerate(jobs):
            slot = n % (ahead + 1)
            pending.append(
                (start, len(chunk), slot, pool.submit(_decode_in_slot, slot, preprocess, start, chunk))
            )
            if len(pending) > ahead:
                yield _take(pending.popleft(), slots)
        while pending:
            yield _take(pending.popleft(), slots)
    except BrokenProcessPool:
        raise ActiscopeError(
            "a decoding process died (out of memory?); run again with fewer --workers or --workers 0"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Slots:
    """`count` batches of uint8 pixels in anonymous shared memory, inherited by forked processes."""

    def __init__(self, count: int, batch_size: int, shape: tuple[int, ...]) -> None:
        self.shape = (count, batch_size, *shape)
        self.memory = mmap.mmap(-1, int(np.prod(self.shape)))  # pages are committed only when written

    def batch(self, slot: int) -> np.ndarray:
        batch: np.ndarray = np.frombuffer(self.memory, np.uint8).reshape(self.shape)[slot]
        return batch


_worker_slots: _Slots | None = None  # set in each decoding process


def _start_worker(slots: _Slots) -> None:
    """A decoding process: lowest priority, and Ctrl-C is for the parent (which shuts the pool down)."""
    global _worker_slots
    _worker_slots = slots
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(19)


def _decode_in_slot(slot: int, preprocess: Preprocessor, start: int, chunk: _Chunk) -> _Decoded:
    assert _worker_slots is not None, "runs in a decoding process, after _start_worker"
    return _decode_into(_worker_slots.batch(slot), preprocess, start, chunk)


def _decode_into(out: np.ndarray, preprocess: Preprocessor, start: int, chunk: _Chunk) -> _Decoded:
    """Decode the files of `chunk` into the first rows of `out`; (how many were readable, {index: error})."""
    count, errors = 0, {}
    for i, (path, box) in enumerate(chunk, start):
        try:
            out[count] = preprocess.pixels_uint8(path, box)
            count += 1
        except MediaReadError as exc:
            errors[i] = exc.reason
    return count, errors


def _take(job: _Job, slots: _Slots) -> DecodedBatch:
    start, size, slot, future = job
    count, errors = future.result()
    # A copy: the slot is written again as soon as the next batch is asked for.
    return list(range(start, start + size)), slots.batch(slot)[:count].copy(), errors
