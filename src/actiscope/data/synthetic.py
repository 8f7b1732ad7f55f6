"""A synthetic clip dataset that only a model of time can solve: which way does the square move?

Four classes (left, right, up, down). Each clip shows one square sliding in its class direction over a
noisy background. Any single frame is a square somewhere, whatever the class, so a model that looks at
frames one by one (`frame-avg`) is left guessing, while a model that compares frames reads the motion.
Clips are real video files (MPEG-4 in AVI, through PyAV) in the UCF layout
(`<class>/v_<Class>_g<group>_c<clip>.avi`), so they go through the same decoding and group-aware split
as a real dataset. Used by the tests and `bench/bench_video.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def moving_square_frames(
    direction: str, rng: np.random.Generator, *, frames: int = 12, size: int = 40, side: int = 6
) -> np.ndarray:
    """(frames, size, size, 3) uint8: a square moving 1-2 px per frame in `direction`."""
    dx, dy = DIRECTIONS[direction]
    speed = rng.uniform(1.0, 2.0)
    travel = speed * (frames - 1)
    # The start is drawn so the whole path stays inside the frame, the cross position anywhere.
    along = rng.uniform(0, size - side - travel)
    across = rng.uniform(0, size - side)
    background = rng.integers(20, 90)
    colour = rng.integers(170, 256, size=3)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        position = along + speed * t
        if dx < 0 or dy < 0:  # moving left/up: start at the far end
            position = size - side - position
        x, y = (position, across) if dx else (across, position)
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
    root: Path, *, clips_per_class: int = 40, groups: int = 8, frames: int = 12, size: int = 40, seed: int = 0
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
