"""Reading clips: header checks and limits before decoding, frame sampling, the clip cache, bad clips in
datasets (reported by inspect, dropped by split, never a crash in training), UCF group-aware splits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from actiscope.data.cache import build_cache, cache_key
from actiscope.data.formats import Sample, load_dataset
from actiscope.data.inspect import inspect_dataset
from actiscope.data.scan import scan_file
from actiscope.data.split import make_split
from actiscope.data.synthetic import make_moving_squares, moving_square_frames, write_clip
from actiscope.data.video import (
    DEFAULT_LIMITS,
    VideoLimits,
    VideoReadError,
    clip_frames,
    preview_frame,
    probe_video,
    read_clip,
    sample_frames,
    window_frames,
    windows,
)


def counting_clip(path: Path, frames: int = 30, size: int = 32, fps: int = 10) -> Path:
    """Frame t is uniformly grey at brightness 8 * t: decoded frames say which frame they were."""
    pixels = np.stack([np.full((size, size, 3), 8 * t, np.uint8) for t in range(frames)])
    write_clip(path, pixels, fps=fps)
    return path


def frame_numbers(pixels: np.ndarray) -> list[int]:
    return [round(float(f.mean()) / 8) for f in pixels]


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, format="PNG")
    return buffer.getvalue()


def audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for i in range(5):
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_probe_reads_the_header(tmp_path: Path) -> None:
    info = probe_video(counting_clip(tmp_path / "c.avi", frames=30, fps=10))
    assert (info.frames, info.fps, info.width, info.height, info.codec) == (30, 10.0, 32, 32, "mpeg4")
    assert info.duration == pytest.approx(3.0, abs=0.15)


def test_read_clip_takes_evenly_spaced_frames_at_model_size(tmp_path: Path) -> None:
    clip = read_clip(counting_clip(tmp_path / "c.avi", frames=30), 16, 5)
    assert clip.pixels.shape == (5, 16, 16, 3) and clip.pixels.dtype == np.uint8
    assert frame_numbers(clip.pixels) == [3, 9, 15, 21, 27]  # centres of five 6-frame stretches
    assert np.allclose(np.diff(clip.times), 0.6)
    short = read_clip(counting_clip(tmp_path / "short.avi", frames=3), 16, 6)  # fewer frames: repeated
    assert frame_numbers(short.pixels) == [0, 0, 1, 1, 2, 2]
    every = read_clip(tmp_path / "c.avi", 16, None, every=10)
    assert frame_numbers(every.pixels) == [0, 10, 20]


def test_sample_frames_centres_and_tsn() -> None:
    assert sample_frames(32, 8).tolist() == [2, 6, 10, 14, 18, 22, 26, 30]
    rng = np.random.default_rng(0)
    picks = np.stack([sample_frames(32, 8, random=True, rng=rng) for _ in range(200)])
    assert ((picks >= np.arange(8) * 4) & (picks < np.arange(1, 9) * 4)).all()  # one per segment
    assert len({tuple(p) for p in picks}) > 100  # and they vary


def test_clip_frames_is_the_centre_of_each_segment(tmp_path: Path) -> None:
    frames = clip_frames(counting_clip(tmp_path / "c.avi", frames=30), 16, 3)
    # segments of frames 0-9, 10-19, 20-29; their centres within the pool's spacing (30/12 frames)
    assert frame_numbers(frames) == [6, 16, 26]
    # the same clip's frames in memory are pooled and sampled the same way
    in_memory = read_clip(tmp_path / "c.avi", 32, None).pixels
    assert frame_numbers(clip_frames(in_memory, 16, 3)) == [6, 16, 26]
    assert clip_frames(in_memory, 16, 3).shape == (3, 16, 16, 3)
    with pytest.raises(VideoReadError, match="a clip array is"):
        clip_frames(in_memory[0], 16, 3)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b"definitely not a video" * 20), "not a video"),
        (lambda p: p.write_bytes(b""), "not a video"),
        (lambda p: audio_only(p), "no video stream"),
        (lambda p: p.write_bytes(_png()), "not a video (a still image, png)"),
    ],
)
def test_bad_files_get_one_clear_error_naming_them(tmp_path: Path, make: object, reason: str) -> None:
    path = tmp_path / "bad.mp4"
    make(path)  # type: ignore[operator]
    for read in (probe_video, lambda p: read_clip(p, 16, 4)):
        with pytest.raises(VideoReadError) as info:
            read(path)
        assert str(path) in str(info.value) and reason in str(info.value)
        assert "\n" not in str(info.value)


def test_limits_are_checked_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = counting_clip(tmp_path / "c.avi", frames=30, fps=10)
    for limits, word in (
        (VideoLimits(max_seconds=1), "ACTISCOPE_MAX_CLIP_SECONDS"),
        (VideoLimits(max_side=16), "ACTISCOPE_MAX_CLIP_SIDE"),
        (VideoLimits(max_frames=10), "ACTISCOPE_MAX_CLIP_FRAMES"),
    ):
        with pytest.raises(VideoReadError, match=word):
            read_clip(path, 16, 4, limits=limits)
    monkeypatch.setenv("ACTISCOPE_MAX_CLIP_SECONDS", "2")
    with pytest.raises(VideoReadError, match="over the limit of 2 s"):
        probe_video(path, VideoLimits.from_env())  # the edges (CLI, web settings) build limits so


def test_the_data_layer_never_reads_limits_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = counting_clip(tmp_path / "c.avi", frames=30, fps=10)  # 3 s
    monkeypatch.setenv("ACTISCOPE_MAX_CLIP_SECONDS", "1")
    monkeypatch.setenv("ACTISCOPE_MAX_CLIP_FRAMES", "5")
    assert VideoLimits.from_env() == VideoLimits(max_seconds=1, max_frames=5)
    assert probe_video(path).frames == 30  # the default limits, whatever the environment says
    assert len(read_clip(path, 16, 4).pixels) == 4
    assert scan_file(path).ok
    strict = VideoLimits(max_seconds=1)
    for read in (
        lambda: clip_frames(path, 16, 3, limits=strict),
        lambda: preview_frame(path, limits=strict),
        lambda: read_clip(path, 16, 4, limits=strict),
    ):
        with pytest.raises(VideoReadError, match="over the limit of 1 s"):
            read()
    assert "over the limit of 1 s" in (scan_file(path, strict).error or "")


def test_an_in_memory_upload_reads_like_a_file(tmp_path: Path) -> None:
    data = counting_clip(tmp_path / "c.avi").read_bytes()
    assert frame_numbers(read_clip(io.BytesIO(data), 16, 5).pixels) == [3, 9, 15, 21, 27]


def test_windows_cover_the_clip() -> None:
    assert windows(1.5, 2.0, 1.0) == [(0.0, 1.5)]
    assert windows(5.0, 2.0, 1.0) == [(0, 2), (1, 3), (2, 4), (3, 5)]
    assert windows(5.6, 2.0, 2.0) == [(0, 2), (2, 4), (3.6, 5.6)]  # the tail gets its own window


def test_window_frames_come_from_inside_the_window(tmp_path: Path) -> None:
    clip = read_clip(counting_clip(tmp_path / "c.avi", frames=30, fps=10), 16, None)
    assert frame_numbers(window_frames(clip, 1.0, 2.0, 2)) == [12, 17]


def test_clip_cache_decodes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [counting_clip(tmp_path / f"c{i}.avi", frames=10 + i) for i in range(3)]
    (tmp_path / "bad.avi").write_bytes(b"junk" * 100)
    samples = [Sample(p, "a") for p in [*paths, tmp_path / "bad.avi"]]
    cache = build_cache(samples, 16, pool=8, workers=1, directory=tmp_path / "cache")
    assert cache.pixels.shape == (4, 8, 16, 16, 3)
    assert list(cache.bad) == [3] and "not a video" in cache.bad[3]
    assert frame_numbers(cache.pixels[0]) == frame_numbers(read_clip(paths[0], 16, 8).pixels)

    def no_decoding(*args: object, **kw: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr("actiscope.data.cache.read_clip", no_decoding)
    again = build_cache(samples, 16, pool=8, workers=1, directory=tmp_path / "cache")
    assert np.array_equal(np.asarray(again.pixels), np.asarray(cache.pixels))


def test_clip_cache_reads_within_the_limits_it_is_given(tmp_path: Path) -> None:
    samples = [Sample(counting_clip(tmp_path / "c.avi", frames=30, fps=10), "a")]
    assert cache_key(samples, 16, None, 8, DEFAULT_LIMITS) == cache_key(samples, 16, None, 8)
    strict = VideoLimits(max_seconds=1)
    assert cache_key(samples, 16, None, 8, strict) != cache_key(samples, 16, None, 8)
    refused = build_cache(samples, 16, pool=8, workers=1, directory=tmp_path / "cache", limits=strict)
    assert "over the limit of 1 s" in refused.bad[0]
    assert build_cache(samples, 16, pool=8, workers=1, directory=tmp_path / "cache").bad == {}


def test_video_dataset_inspect_split_and_bad_clip(tmp_path: Path) -> None:
    root = make_moving_squares(tmp_path / "sq", clips_per_class=6, groups=3, frames=6, size=24)
    bad = root / "left" / "v_Left_g09_c01.avi"
    bad.write_bytes(b"broken" * 50)
    dataset = load_dataset(root)
    assert (dataset.format, dataset.kind, len(dataset.samples)) == ("video-folder", "video", 25)
    report = inspect_dataset(dataset, workers=1)
    assert [u["path"] for u in report.unreadable] == [str(bad)]
    assert report.image_stats["formats"] == {"mpeg4": 24}
    assert report.image_stats["duration_s"]["median"] == pytest.approx(0.5, abs=0.1)
    manifest = make_split(dataset, val=0.2, test=0.2, seed=0, workers=1)
    assert [d["path"] for d in manifest.dropped] == [str(bad)]
    # the clips of one recording (UCF group) never straddle splits
    where: dict[str, set[str]] = {}
    for entry in manifest.entries:
        group = Path(entry.path).stem.rsplit("_c", 1)[0]
        where.setdefault(group, set()).add(entry.split)
    assert len(where) == 12 and all(len(s) == 1 for s in where.values())
    assert {e.split for e in manifest.entries} == {"train", "val", "test"}
    # limits given to inspect and split reach every clip they read (6-frame clips, at most 5 allowed)
    strict = VideoLimits(max_frames=5)
    assert len(inspect_dataset(dataset, workers=1, limits=strict).unreadable) == 25
    refused = make_split(dataset, val=0.2, test=0.2, workers=1, limits=strict)
    assert len(refused.dropped) == 25 and not refused.entries


def test_single_frames_do_not_tell_the_direction() -> None:
    """The synthetic task's premise: per-frame statistics are alike across classes."""
    rng = np.random.default_rng(0)
    for direction in ("left", "right", "up", "down"):
        frames = moving_square_frames(direction, rng)
        assert frames.shape == (16, 32, 32, 3)
        bright = (frames.mean(axis=3) > 150).sum(axis=(1, 2))
        assert (bright == 25).all()  # one 5x5 square in every frame, whatever the class


def test_csv_of_clips_is_a_video_dataset(tmp_path: Path) -> None:
    root = make_moving_squares(tmp_path / "sq", clips_per_class=2, groups=1, frames=4, size=16)
    lines = ["filename,label"] + [
        f"{p.relative_to(root)},{p.parent.name}" for p in sorted(root.rglob("*.avi"))
    ]
    (root / "labels.csv").write_text("\n".join(lines))
    dataset = load_dataset(root / "labels.csv")
    assert (dataset.format, dataset.kind, len(dataset.samples), dataset.classes) == (
        "csv",
        "video",
        8,
        ["down", "left", "right", "up"],
    )
