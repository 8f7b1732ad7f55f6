"""Decoded-media cache: every image (or clip) decoded and resized once, kept as uint8 in a memory-mapped
file. A clip is stored as its pool of evenly spaced frames (data.video), from which training samples.

Later epochs (and later runs, and `compare` across architectures) read pixels straight from the page
cache instead of decoding JPEGs or video. The key covers each file's path, size and mtime, the crop,
the image size and the pool length, so a changed file or setting makes a new cache instead of a stale one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actiscope.data.formats import Sample
from actiscope.data.images import load_pixels
from actiscope.data.video import DEFAULT_LIMITS, VideoLimits, read_clip
from actiscope.errors import MediaReadError
from actiscope.files import atomic_output, atomic_write_text, cache_root

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def cache_dir() -> Path:
    return cache_root() / "images"


@dataclass
class ImageCache:
    """uint8 pixels (N, S, S, 3), or (N, P, S, S, 3) for clips, for a list of samples; `bad` maps an index
    to why it could not be read."""

    pixels: np.ndarray
    bad: dict[int, str]

    @property
    def good(self) -> list[int]:
        return [i for i in range(len(self.pixels)) if i not in self.bad]


def decode_sample(
    sample: Sample,
    image_size: int,
    crop_margin: float | None,
    pool: int | None = None,
    *,
    limits: VideoLimits = DEFAULT_LIMITS,
) -> np.ndarray:
    """One sample to model-size pixels (images.load_pixels, as the Predictor decodes), or for a clip
    (`pool` frames) its frame pool (video.read_clip, within `limits`)."""
    if pool:
        return read_clip(sample.path, image_size, pool, limits=limits).pixels
    box = sample.box if crop_margin is not None else None
    return load_pixels(sample.path, image_size, box=box, margin=crop_margin or 0.0)


def _decode_chunk(
    args: tuple[list[Sample], int, float | None, int | None, VideoLimits],
) -> list[np.ndarray | str]:
    samples, size, margin, pool, limits = args
    out: list[np.ndarray | str] = []
    for sample in samples:
        try:
            out.append(decode_sample(sample, size, margin, pool, limits=limits))
        except MediaReadError as exc:
            out.append(str(exc))
    return out


def cache_key(
    samples: Sequence[Sample],
    image_size: int,
    crop_margin: float | None,
    pool: int | None = None,
    limits: VideoLimits = DEFAULT_LIMITS,
) -> str:
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{image_size}|{crop_margin}|{pool}".encode())
    if pool and limits != DEFAULT_LIMITS:
        # Other limits refuse other clips. The default adds nothing, so the caches made before stay valid.
        digest.update(repr(limits).encode())
    for s in samples:
        stat = s.path.stat() if s.path.exists() else None
        digest.update(f"{s.path}|{stat and stat.st_size}|{stat and stat.st_mtime_ns}|{s.box}\n".encode())
    return digest.hexdigest()[:20]


def build_cache(
    samples: Sequence[Sample],
    image_size: int,
    *,
    crop_margin: float | None = None,
    pool: int | None = None,
    workers: int | None = None,
    directory: Path | None = None,
    limits: VideoLimits = DEFAULT_LIMITS,
) -> ImageCache:
    """Return the cache for `samples`, decoding (in parallel) only if it does not exist yet. `pool`:
    the samples are clips, each stored as that many frames (read within `limits`)."""
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(samples, image_size, crop_margin, pool, limits)
    data_path, index_path = directory / f"{key}.u8", directory / f"{key}.json"
    shape = (len(samples), *((pool,) if pool else ()), image_size, image_size, 3)
    if index_path.is_file() and data_path.is_file():  # the index is written last: its presence means complete
        bad: dict[int, str] = {int(k): v for k, v in json.loads(index_path.read_text())["bad"].items()}
        return ImageCache(np.memmap(data_path, dtype=np.uint8, mode="r", shape=shape), bad)

    what = f"clips to {pool} frames of" if pool else "images to"
    log.info("decoding %d %s %dx%d once (cache %s)", len(samples), what, image_size, image_size, directory)
    bad = {}
    with atomic_output(data_path) as tmp:
        pixels = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
        chunk = 4 if pool else 64
        jobs = [
            (list(samples[i : i + chunk]), image_size, crop_margin, pool, limits)
            for i in range(0, len(samples), chunk)
        ]
        workers = workers if workers is not None else (os.cpu_count() or 1)
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=workers) as executor:
                results = executor.map(_decode_chunk, jobs)
                _fill(pixels, bad, results, chunk)
        else:
            _fill(pixels, bad, map(_decode_chunk, jobs), chunk)
        pixels.flush()
        del pixels
    atomic_write_text(
        index_path, json.dumps({"bad": {str(k): v for k, v in bad.items()}, "count": len(samples)})
    )
    return ImageCache(np.memmap(data_path, dtype=np.uint8, mode="r", shape=shape), bad)


def _fill(
    pixels: np.ndarray, bad: dict[int, str], results: Iterable[list[np.ndarray | str]], chunk: int
) -> None:
    for n, decoded in enumerate(results):
        for j, item in enumerate(decoded):
            index = n * chunk + j
            if isinstance(item, str):
                bad[index] = item
            else:
                pixels[index] = item
