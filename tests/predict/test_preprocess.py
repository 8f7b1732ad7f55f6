from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from actiscope.data.config import DataConfig
from actiscope.data.images import load_image
from actiscope.data.transforms import eval_transform, preprocess
from actiscope.data.video import VideoLimits, VideoReadError
from actiscope.package import PackageMeta
from actiscope.predict import Predictor, Preprocessor


def test_predictor_applies_the_training_preprocessing(package: Path, folder: Path) -> None:
    predictor = Predictor.load(package)
    path = folder / "red" / "red_0.png"
    expected = eval_transform(DataConfig(32))(
        torch.from_numpy(preprocess(load_image(path), 32)).permute(2, 0, 1)
    )
    # The Predictor normalises numpy arrays, training normalises tensors: the same numbers.
    assert np.array_equal(predictor.preprocess(path), expected.numpy())
    # Paths, PIL images and arrays of the same picture give the same answer.
    image = Image.open(path).convert("RGB")
    by_path, by_pil, by_array = predictor.predict([path, image, np.asarray(image)], top_k=3)
    assert by_path == by_pil == by_array
    assert len(by_path.top_k) == 3 and by_path.top_k[0] == (by_path.label, by_path.confidence)
    assert sum(p for _, p in by_path.top_k) == pytest.approx(1.0, abs=1e-5)
    assert [p for _, p in by_path.top_k] == sorted((p for _, p in by_path.top_k), reverse=True)


def test_a_picture_in_memory_gets_the_colour_conversion_of_a_file(tmp_path: Path) -> None:
    """Transparent pixels are white whether the picture comes as a file or already opened (Pillow's own
    RGBA -> RGB would keep the black beneath them)."""
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:16] = (200, 30, 30, 255)  # the top half opaque red, the bottom half transparent black
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    pixels = Preprocessor(_meta("image"))
    from_file = pixels.pixels_uint8(tmp_path / "clear.png")
    # 16 px high: red above, white below
    assert (from_file[:, 10:] == 255).all() and (from_file[0, :6] == 200).all()
    assert np.array_equal(pixels.pixels_uint8(Image.open(tmp_path / "clear.png")), from_file)
    assert np.array_equal(pixels.pixels_uint8(rgba), from_file)


def _meta(kind: str) -> PackageMeta:
    return PackageMeta(
        "test", kind, 16, [0.5] * 3, [0.25] * 3, ["a", "b"], frames=4 if kind == "video" else None
    )


def test_clips_are_read_within_the_limits_given_not_the_environment(
    three_second_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = three_second_clip
    monkeypatch.setenv("ACTISCOPE_MAX_CLIP_SECONDS", "1")  # the library no longer reads it
    assert Preprocessor(_meta("video")).pixels_uint8(clip).shape == (4, 3, 16, 16)
    strict = Preprocessor(_meta("video"), video_limits=VideoLimits(max_seconds=2))
    with pytest.raises(VideoReadError, match="over the limit of 2 s"):
        strict.pixels_uint8(clip)
    # An in-memory clip has no header to check: its frames are already decoded.
    assert strict.pixels_uint8(np.zeros((36, 16, 16, 3), np.uint8)).shape == (4, 3, 16, 16)
    with pytest.raises(VideoReadError, match="give it a clip, not an image"):
        strict.pixels_uint8(Image.new("RGB", (16, 16)))
