"""A synthetic clip dataset that only a model of time can solve: which way does the square move?

Four classes (left, right, up, down). In the first half of a clip a decoy square jumps between the
points of a segment on one axis, in shuffled order; in the second half the square slides in the class
direction along a segment on the other axis. The two segments are drawn alike, so the *set* of frames of a clip is the same whatever the class: any
single frame, and any average over frames, is a square somewhere on a horizontal and a vertical line.
Only the order tells the classes apart, so a model without time (`frame-avg`) stays at chance (25%) by
construction, while a model that follows frames through time reads the direction. (With the mover alone,
the line its frames lie on would give away horizontal versus vertical: 50% without any time.)

Clips are real video files (MPEG-4 in AVI, through PyAV) in the UCF layout
(`<class>/v_<Class>_g<group>_c<clip>.avi`), so they go through the same decoding and group-aware split
as a real dataset. Used by the tests and `bench/bench_video.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def moving_square_frames(
    direction: str, rng: np.random.Generator, *, frames: int = 16, size: int = 32, side: int = 5
) -> np.ndarray:
    """(frames, size, size, 3) uint8: the decoy in the first half, the mover in the second."""
    dx, _ = DIRECTIONS[direction]
    steps = (frames + 1) // 2
    speed = rng.uniform(1.5, 2.5)

    def segment() -> tuple[np.ndarray, float]:
        """Evenly spaced points along an axis (within the frame) and a cross position."""
        start = rng.uniform(0, size - side - speed * (steps - 1))
        return start + speed * np.arange(steps), rng.uniform(0, size - side)

    along, across = segment()
    if direction in ("left", "up"):
        along = along[::-1]
    decoy_along, decoy_across = segment()
    decoy_along = rng.permutation(decoy_along)
    horizontal = dx != 0
    background, colour = rng.integers(20, 90), rng.integers(170, 256, size=3)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        mover = t >= frames - steps
        a, c = (along[t - (frames - steps)], across) if mover else (decoy_along[t], decoy_across)
        x, y = (a, c) if horizontal == mover else (c, a)  # the decoy runs on the other axis
        frame = rng.normal(background, 8, size=(size, size, 3))
        x0, y0 = round(x), round(y)
        frame[y0 : y0 + side, x0 : x0 + side] = colour
        out[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def write_clip(path: Path, frames: np.ndarray, fps: int = 12) -> None:
    """Frames (T, H, W, 3) uint8 to a video file (MPEG-4 at high quality; AVI or MP4 by suffix)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {"qscale": "2"}
        stream.codec_context.qmin = stream.codec_context.qmax = 2
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def make_moving_squares(
    root: Path, *, clips_per_class: int = 40, groups: int = 8, frames: int = 16, size: int = 32, seed: int = 0
) -> Path:
    """Write the dataset under `root` (UCF layout, `groups` recordings per class) and return root."""
    rng = np.random.default_rng(seed)
    for direction in DIRECTIONS:
        name = direction.capitalize()
        for n in range(clips_per_class):
            group, clip = n % groups + 1, n // groups + 1
            path = root / direction / f"v_{name}_g{group:02d}_c{clip:02d}.avi"
            write_clip(path, moving_square_frames(direction, rng, frames=frames, size=size))
    return root
