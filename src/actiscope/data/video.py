"""One safe way to turn a clip into frames: PyAV reads the header, limits are checked, then it decodes.

Everything that reads video (inspect, the clip cache, the Predictor, the web app) goes through
`probe_video` and `read_clip`, so corrupt files, audio-only files and oversized clips are handled once.
Their limits are a parameter (`VideoLimits`, default numbers unless the caller passes others); only the
edges (the CLI, the web settings) build them from the environment, with `VideoLimits.from_env()`.

A clip becomes a *pool* of frames at evenly spaced positions, resized (squashed, like images) to the
model's size. Training, evaluation and prediction then pick the model's frames from the pool with
`sample_frames`: the centre frame of each of `frames` equal segments, or in training with TSN-style
sampling one random frame per segment. The pool is what the clip cache stores, so epochs after the
first never decode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from actiscope.errors import MediaReadError

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v"})
POOL_PER_SEGMENT = 4  # frames kept per segment: TSN sampling chooses among them

VideoSource = str | Path | BinaryIO


class VideoReadError(MediaReadError):
    """A file that is not a usable clip; the message names the file and the reason."""


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoLimits:
    """Checked on the header, before a frame is decoded. The edges (CLI, web settings) may build them
    from the environment with `from_env`; nothing in the data layer reads the environment itself."""

    max_seconds: float = 600.0
    max_side: int = 4096
    max_frames: int = 36_000

    @classmethod
    def from_env(cls) -> VideoLimits:
        """ACTISCOPE_MAX_CLIP_SECONDS / _SIDE / _FRAMES, each falling back to the default when unset or
        not a number. For the edges only: library code takes a VideoLimits parameter instead."""

        def number(name: str, default: float) -> float:
            try:
                return float(os.environ.get(name, default))
            except ValueError:
                return default

        return cls(
            number("ACTISCOPE_MAX_CLIP_SECONDS", cls.max_seconds),
            int(number("ACTISCOPE_MAX_CLIP_SIDE", cls.max_side)),
            int(number("ACTISCOPE_MAX_CLIP_FRAMES", cls.max_frames)),
        )


DEFAULT_LIMITS = VideoLimits()


@dataclass(frozen=True)
class VideoInfo:
    duration: float  # seconds
    frames: int  # as the container states it, or estimated from duration x rate
    fps: float
    width: int
    height: int
    codec: str


@dataclass
class Clip:
    pixels: np.ndarray  # (N, S, S, 3) uint8
    times: np.ndarray  # (N,) seconds from the start of the clip
    info: VideoInfo


def _name(source: VideoSource) -> str:
    return str(source) if isinstance(source, str | Path) else getattr(source, "name", "<uploaded clip>")


def _open(source: VideoSource) -> Any:  # a PyAV container (PyAV ships no type information)
    import av

    name = _name(source)
    if isinstance(source, str | Path) and not Path(source).is_file():
        raise VideoReadError(name, "no such file")
    if hasattr(source, "seek"):  # an upload in memory may have been read before (probed)
        source.seek(0)
    try:
        return av.open(source if not isinstance(source, Path) else str(source), mode="r")
    except av.FFmpegError as exc:
        raise VideoReadError(
            name, f"not a video (unrecognised file contents: {exc.strerror or exc})"
        ) from None


def _info(container: Any, name: str, limits: VideoLimits) -> VideoInfo:
    demuxer = container.format.name
    if demuxer.endswith("_pipe") or demuxer == "image2":  # FFmpeg reads a PNG or JPEG as a 1-frame video
        raise VideoReadError(
            name, f"not a video (a still image, {demuxer.removesuffix('_pipe')}); give a clip"
        )
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise VideoReadError(name, f"no video stream (the file holds {', '.join(kinds)}: audio-only?)")
    stream = container.streams.video[0]
    fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = 0.0
    frames = int(stream.frames) or round(duration * fps)
    codec = stream.codec_context
    if codec is None:  # found by tests/data/test_fuzz_readers.py: a damaged header naming no decoder
        raise VideoReadError(name, "no decoder for its video stream (unknown or damaged codec)")
    width, height = codec.width, codec.height
    info = VideoInfo(duration, frames, fps, width, height, codec.name)
    if duration > limits.max_seconds:
        raise VideoReadError(
            name,
            f"{duration:.0f} s is over the limit of {limits.max_seconds:g} s "
            "(ACTISCOPE_MAX_CLIP_SECONDS); trim the clip",
        )
    if max(width, height) > limits.max_side:
        raise VideoReadError(
            name,
            f"{width}x{height} is over the limit of {limits.max_side} px a side "
            "(ACTISCOPE_MAX_CLIP_SIDE); downscale the clip",
        )
    if frames > limits.max_frames:
        raise VideoReadError(
            name,
            f"{frames} frames is over the limit of {limits.max_frames} "
            "(ACTISCOPE_MAX_CLIP_FRAMES); trim the clip",
        )
    if width <= 0 or height <= 0:
        raise VideoReadError(name, "the video stream has no frame size (damaged header)")
    return info


def probe_video(source: VideoSource, limits: VideoLimits = DEFAULT_LIMITS) -> VideoInfo:
    """Duration, frame count, size and codec from the header; raises VideoReadError for a bad file."""
    container = _open(source)
    try:
        return _info(container, _name(source), limits)
    finally:
        container.close()


def read_clip(
    source: VideoSource,
    size: int | tuple[int, int],
    positions: int | None = None,
    *,
    every: int = 1,
    limits: VideoLimits = DEFAULT_LIMITS,
) -> Clip:
    """Decode `source` to `positions` evenly spaced frames (or, with None, every `every`-th frame),
    each resized to size x size (or (width, height)) RGB uint8. Frames not kept are decoded, not converted.

    A clip shorter than `positions` frames repeats frames; when the header overstates the frame count,
    the positions past the real end take the last frame decoded.
    """
    import av

    name = _name(source)
    container = _open(source)
    try:
        info = _info(container, name, limits)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = (size, size) if isinstance(size, int) else size
        wanted = pool_indices(max(1, info.frames), positions) if positions else None
        keep = set(wanted.tolist()) if wanted is not None else None
        last = max(keep) if keep else 0
        frames: dict[int, np.ndarray] = {}
        times: dict[int, float] = {}
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index >= limits.max_frames:
                    raise VideoReadError(
                        name, f"more than {limits.max_frames} frames (ACTISCOPE_MAX_CLIP_FRAMES)"
                    )
                if (keep is None and index % every == 0) or (keep is not None and index in keep):
                    frames[index] = frame.to_ndarray(
                        width=width, height=height, format="rgb24", interpolation="BILINEAR"
                    )
                    times[index] = float(frame.time) if frame.time is not None else index / info.fps
                if keep is not None and index >= last:
                    break
        except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
            if not frames:
                raise VideoReadError(name, f"corrupt video data ({exc})") from None
            # Damage after some frames: use what decoded, like a player would.
    finally:
        container.close()
    if not frames:
        raise VideoReadError(name, "no decodable video frames")
    decoded = sorted(frames)
    if wanted is None:
        chosen = decoded
    else:  # positions past the real end (an overstated header) take the nearest earlier frame
        chosen = [max((d for d in decoded if d <= w), default=decoded[0]) for w in wanted.tolist()]
    return Clip(np.stack([frames[i] for i in chosen]), np.array([times[i] for i in chosen]), info)


def pool_indices(total: int, positions: int) -> np.ndarray:
    """Indices of `positions` evenly spaced frames among `total` (repeated when there are fewer)."""
    return np.minimum(((np.arange(positions) + 0.5) * total / positions).astype(int), total - 1)


def pool_size(frames: int) -> int:
    """How many evenly spaced frames are decoded (and cached) for a model that takes `frames`."""
    return frames * POOL_PER_SEGMENT


def sample_frames(
    pool_length: int, frames: int, *, random: bool = False, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Indices into a pool: `frames` equal segments, the centre of each (evaluation, `uniform`), or one
    random index per segment (TSN training)."""
    edges = np.linspace(0, pool_length, frames + 1)
    if random:
        rng = rng or np.random.default_rng()
        picks = edges[:-1] + rng.random(frames) * (edges[1:] - edges[:-1])
    else:
        picks = (edges[:-1] + edges[1:]) / 2
    return np.clip(picks.astype(int), 0, pool_length - 1)


def clip_frames(
    source: VideoSource | np.ndarray, size: int, frames: int, *, limits: VideoLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """The model input of a clip as (frames, S, S, 3) uint8: the evaluation frames of its pool. The
    clip is a file, an upload, or its frames in memory as a (T, H, W, 3) array (then pooled and resized
    the same way, by FFmpeg's scaler; `limits` apply to files and uploads)."""
    if not isinstance(source, np.ndarray):
        pool = read_clip(source, size, pool_size(frames), limits=limits).pixels
        return pool[sample_frames(len(pool), frames)]
    if source.ndim != 4 or source.shape[-1] != 3 or not len(source):
        raise VideoReadError("<array>", f"a clip array is (frames, height, width, 3), not {source.shape}")
    pool = pool_indices(len(source), pool_size(frames))
    return np.stack([resize_frame(source[i], size) for i in pool[sample_frames(len(pool), frames)]])


def resize_frame(rgb: np.ndarray, size: int) -> np.ndarray:
    """One (H, W, 3) RGB frame squashed to (size, size, 3) uint8 by FFmpeg's scaler, as a clip's frames are
    (a camera's frames on the Live page too)."""
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
    return frame.to_ndarray(width=size, height=size, format="rgb24", interpolation="BILINEAR")


def windows(duration: float, window: float, stride: float) -> list[tuple[float, float]]:
    """(start, end) seconds of sliding windows over a clip; a clip shorter than one window is one window."""
    if duration <= window:
        return [(0.0, duration)]
    starts = np.arange(0.0, duration - window + 1e-9, stride)
    if duration - (starts[-1] + window) > stride / 2:  # the tail gets its own window
        starts = np.append(starts, duration - window)
    return [(round(float(s), 3), round(float(s) + window, 3)) for s in starts]


def window_frames(clip: Clip, start: float, end: float, frames: int) -> np.ndarray:
    """The model input for one window of a decoded clip: centre frames of `frames` segments of it."""
    inside = np.flatnonzero((clip.times >= start - 1e-6) & (clip.times < end - 1e-6))  # [start, end)
    if len(inside) == 0:
        inside = np.array([int(np.argmin(np.abs(clip.times - start)))])
    return clip.pixels[inside[sample_frames(len(inside), frames)]]


def preview_frame(
    source: VideoSource, longest: int = 256, *, limits: VideoLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """The middle frame of a clip at its own aspect ratio, for thumbnails and reports."""
    info = probe_video(source, limits)
    scale = longest / max(info.width, info.height)
    size = (max(2, round(info.width * scale / 2) * 2), max(2, round(info.height * scale / 2) * 2))
    return read_clip(source, size, 3, limits=limits).pixels[1]
