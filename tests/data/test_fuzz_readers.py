"""The readers fuzzed: mutated images and clips (seeded with real files when ../shared/data is there) either
decode or raise the project's own error naming the file; nothing else, within a time bound per input.

A short run here (a fixed, derandomised set of inputs); `bench/bench_fuzz.py` runs the same properties for
minutes with random inputs (FUZZ_EXAMPLES, FUZZ_REPORT).
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from actiscope.data.images import load_image
from actiscope.data.video import VideoLimits, read_clip
from actiscope.errors import MediaReadError
from tests.conftest import SHARED_DATA
from tests.data.test_video import counting_clip

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))  # 0: the suite's short, derandomised run
REPORT = os.environ.get("FUZZ_REPORT")  # a JSON file the bench reads the counts from
IMAGE_SECONDS, CLIP_SECONDS = 5.0, 20.0  # per input: far above a healthy decode, far below a hang
MEMORY_GROWTH_MB = 1024  # the process's peak RSS may grow at most this much over a whole run
CLIP_LIMITS = VideoLimits(max_seconds=120, max_side=1024, max_frames=2000)  # as an upload would meet


class Hang(Exception):
    pass


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """SIGALRM for one input: PIL and PyAV return to Python between decode steps (rows, frames)."""

    def expired(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _synthetic_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    pixels = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    seeds = []
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"):
        buffer = io.BytesIO()
        pixels.save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    return seeds


def _real_images(count: int = 4) -> list[bytes]:
    folder = SHARED_DATA / "har15" / "images"
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"))[:count]] if folder.is_dir() else []


def _clips(tmp: Path) -> list[bytes]:
    seeds = [counting_clip(tmp / "a.avi", frames=12, size=32).read_bytes()]
    shared = SHARED_DATA / "video-clips"
    # the shared clips' own containers and codecs (mp4/h264, avi): only their first 64 KiB, so each
    # mutated input stays quick to decode (a cut-off file is one of the cases anyway)
    seeds += [p.read_bytes()[: 64 * 1024] for p in sorted(shared.glob("*")) if p.suffix in (".mp4", ".avi")]
    return seeds


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed file with up to 8 edits: bit flips, cuts, inserted bytes, header bytes and header integers
    (dimensions, lengths and counts live in the first few hundred bytes of every format here)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        op = draw(st.sampled_from(("flip", "cut", "insert", "header", "integer")))
        at = draw(st.integers(0, len(data) - 1))
        head = draw(st.integers(0, min(len(data), 512) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "header":
            data[head] = draw(st.integers(0, 255))
        else:
            value = draw(st.sampled_from((0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)))
            width = draw(st.sampled_from((2, 4)))
            data[head : head + width] = value.to_bytes(4, draw(st.sampled_from(("big", "little"))))[:width]
    return bytes(data)


class Tally:
    """Counts of outcomes across one property's inputs, for the bench's figures."""

    def __init__(self, name: str) -> None:
        self.name, self.counts, self.slowest = name, {"decoded": 0, "refused": 0}, 0.0
        self.start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def check(self, data: bytes, suffix: str, read: Callable[[io.BytesIO], object], bound: float) -> None:
        buffer = io.BytesIO(data)
        buffer.name = f"fuzz-input{suffix}"
        started = time.perf_counter()
        try:
            with time_bound(bound):
                read(buffer)
            self.counts["decoded"] += 1
        except MediaReadError as exc:
            assert buffer.name in str(exc), f"the error does not name the file: {exc}"
            self.counts["refused"] += 1
        self.slowest = max(self.slowest, time.perf_counter() - started)

    def finish(self) -> dict[str, object]:
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.start_rss) / 1024
        assert growth < MEMORY_GROWTH_MB, f"peak memory grew by {growth:.0f} MB over the run"
        result = {
            **self.counts,
            "inputs": sum(self.counts.values()),
            "crashes": 0,
            "slowest_s": round(self.slowest, 3),
            "peak_rss_growth_mb": round(growth, 1),
        }
        if REPORT:
            path = Path(REPORT)
            earlier = json.loads(path.read_text()) if path.is_file() else {}
            path.write_text(json.dumps({**earlier, self.name: result}, indent=1))
        return result


def _settings(short: int) -> settings:
    return settings(
        max_examples=EXAMPLES or short,
        derandomize=not EXAMPLES,  # the suite's run is the same every time; the bench explores
        deadline=None,  # the time bound is ours (time_bound): hypothesis' deadline would flag a slow seed
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def test_mutated_images_decode_or_are_refused_by_name() -> None:
    tally = Tally("images")
    seeds = _synthetic_images() + _real_images()

    @_settings(short=150)
    @given(mutated(seeds))
    def run(data: bytes) -> None:
        tally.check(data, ".jpg", lambda b: load_image(b, max_pixels=16_000_000), IMAGE_SECONDS)

    run()
    result = tally.finish()
    assert result["decoded"] and result["refused"], result  # the mutations reach both outcomes


def test_mutated_clips_decode_or_are_refused_by_name(tmp_path: Path) -> None:
    tally = Tally("clips")
    seeds = _clips(tmp_path)

    @_settings(short=40)
    @given(mutated(seeds))
    def run(data: bytes) -> None:
        tally.check(data, ".mp4", lambda b: read_clip(b, 32, 8, limits=CLIP_LIMITS), CLIP_SECONDS)

    run()
    result = tally.finish()
    assert result["decoded"] and result["refused"], result


def test_the_time_bound_stops_a_slow_reader() -> None:
    """The bound itself works (a property that cannot fail on a hang would prove nothing)."""
    with pytest.raises(Hang), time_bound(0.2):
        while True:
            time.sleep(0.01)


def test_a_stream_without_a_decoder_is_refused_by_name() -> None:
    """What the fuzzer found once (an AttributeError): a damaged header whose video stream has no codec."""
    from types import SimpleNamespace

    from actiscope.data.video import VideoReadError, _info

    stream = SimpleNamespace(
        average_rate=25,
        guessed_rate=None,
        duration=None,
        time_base=None,
        frames=10,
        codec_context=None,
        type="video",
    )
    container = SimpleNamespace(
        format=SimpleNamespace(name="mov,mp4"), streams=SimpleNamespace(video=[stream]), duration=None
    )
    with pytest.raises(VideoReadError, match=r"fuzz\.mp4: no decoder for its video stream"):
        _info(container, "fuzz.mp4", VideoLimits())
