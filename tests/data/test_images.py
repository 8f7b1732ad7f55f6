from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from actiscope.data.images import ImageReadError, crop_box, load_image
from tests.conftest import noise_image, truncated_jpeg


def test_zero_byte_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.jpg: not an image"):
        load_image(path)


def test_text_file_with_jpg_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    with pytest.raises(ImageReadError) as err:
        load_image(path)
    assert err.value.path == str(path)
    assert "not an image" in err.value.reason


def test_truncated_jpeg_is_an_error_not_half_an_image(tmp_path: Path) -> None:
    path = truncated_jpeg(tmp_path / "cut.jpg")
    with pytest.raises(ImageReadError, match="truncated"):
        load_image(path)


def test_disallowed_format_refused_whatever_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "really_a_ppm.jpg"
    noise_image(1).save(path, format="PPM")
    with pytest.raises(ImageReadError, match="PPM is not an allowed image format"):
        load_image(path)


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(path)
    with pytest.raises(ImageReadError, match="over the limit of 10000"):
        load_image(path, max_pixels=10_000)
    assert load_image(path, max_pixels=20_000).size == (200, 100)


def test_cmyk_jpeg_becomes_correct_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    image = load_image(path)
    assert image.mode == "RGB"
    r, g, b = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert r > 230 and g < 30 and b < 30


def test_16_bit_png_is_scaled_not_white(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    arr = np.full((8, 8), 32768, dtype=np.uint16)
    arr[:, :4] = 8192
    Image.fromarray(arr).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    pixels = np.asarray(load_image(path))
    assert pixels.shape == (8, 8, 3)
    assert abs(int(pixels[0, 6, 0]) - 128) <= 1
    assert abs(int(pixels[0, 1, 0]) - 32) <= 1


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    image = noise_image(3, size=(40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(path, exif=exif)
    assert load_image(path).size == (20, 40)


def test_transparent_pixels_become_white_not_black(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert np.asarray(load_image(path)).min() == 255


def test_palette_and_greyscale_convert(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.new("L", (4, 4), 77).save(grey)
    assert np.asarray(load_image(grey))[0, 0].tolist() == [77, 77, 77]
    pal = tmp_path / "pal.gif"
    Image.new("RGB", (4, 4), (0, 0, 255)).convert("P").save(pal)
    assert np.asarray(load_image(pal))[0, 0].tolist() == [0, 0, 255]


def test_crop_to_box_with_margin_stays_inside_the_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    noise_image(4, size=(100, 80)).save(path)
    assert load_image(path, box=(10, 10, 30, 50)).size == (20, 40)
    assert load_image(path, box=(10, 10, 30, 50), margin=0.5).size == (40, 70)  # top clamped at 0
    assert crop_box((80, 60, 120, 100), (100, 80), margin=0.25) == (70, 50, 100, 80)
    assert crop_box((200, 200, 300, 300), (100, 80)) == (0, 0, 100, 80)  # outside: whole image
