from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import actiscope
from actiscope.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    crop_box,
    decode_image,
    load_image,
    load_pixels,
)
from actiscope.data.transforms import preprocess
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


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height in its header and holds a cut-off first row of pixel data:
    decoding it can only fail (truncated), so an error about its size proves the size was checked
    before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" + b"\x80" * 3 * width)[:-8]
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", row)


def test_a_huge_header_is_refused_before_decoding(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    small.write_bytes(png_header(100, 100))
    with pytest.raises(ImageReadError, match="truncated"):  # what decoding the pixels would say
        load_image(small)
    over_ours = tmp_path / "9000.png"  # 81 Mpx: over our 64 Mpx default, under Pillow's warning level
    over_ours.write_bytes(png_header(9000, 9000))
    with pytest.raises(ImageReadError, match="9000x9000 pixels is over the limit of 64000000"):
        load_image(over_ours)
    bomb = tmp_path / "bomb.png"  # 10 Gpx: Pillow itself refuses it while opening
    bomb.write_bytes(png_header(100_000, 100_000))
    for limit in (DEFAULT_MAX_PIXELS, 10**12):  # a generous limit of ours does not lift Pillow's
        with pytest.raises(ImageReadError, match="decompression bomb"):
            load_image(bomb, max_pixels=limit)
    assert Image.MAX_IMAGE_PIXELS is not None


def test_importing_the_decoder_leaves_pillow_settings_alone() -> None:
    """The limits are per call; another library's (or the user's) choice of Pillow globals stays."""
    src = Path(actiscope.__file__).parents[1]
    code = (
        "from PIL import Image, ImageFile\n"
        "ImageFile.LOAD_TRUNCATED_IMAGES = True\n"
        "Image.MAX_IMAGE_PIXELS = 123\n"
        "import actiscope.data.images, actiscope.data.scan, actiscope.data.cache\n"
        "assert ImageFile.LOAD_TRUNCATED_IMAGES is True and Image.MAX_IMAGE_PIXELS == 123\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_decode_image_reports_how_the_file_stored_the_image(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(path, quality=95)
    for draft in (None, 16):  # a draft decode converts while decoding; the stored mode is still CMYK
        decoded = decode_image(path, draft=draft)
        assert (decoded.format, decoded.mode, decoded.image.mode) == ("JPEG", "CMYK", "RGB")
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(deep)
    assert decode_image(deep).mode.startswith("I") and decode_image(deep).format == "PNG"


def test_load_pixels_is_the_draft_decode_then_preprocess(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    noise_image(5, size=(400, 300)).save(path, quality=90)
    for box in (None, (40.0, 30.0, 300.0, 250.0)):
        expected = preprocess(load_image(path, box=box, margin=0.1, draft=64), 64)
        pixels = load_pixels(path, 64, box=box, margin=0.1)
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
        assert np.array_equal(pixels, expected)
    # the draft decode is what the cache and the Predictor always used: it differs from a full decode
    assert not np.array_equal(load_pixels(path, 64), preprocess(load_image(path), 64))
