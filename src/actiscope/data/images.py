"""One safe way to turn a file into an RGB image.

Everything that reads pixels (inspect, scan, the training cache, prediction, the web app) goes through
`decode_image` (or its shorthands `load_image` and `load_pixels`), so EXIF orientation, odd colour modes,
decompression bombs and truncated files are handled once.

Pillow's process-wide settings are left as Pillow ships them: the pixel limit is a parameter of each
call, checked on the header, and a truncated file is refused because `ImageFile.LOAD_TRUNCATED_IMAGES`
is False by default (a half image is reported, never learned from).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from actiscope.data.transforms import preprocess
from actiscope.errors import MediaReadError

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "MPO"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000; larger is a bomb or a scan, not an action photo

Box = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in pixels
ImageSource = str | Path | BinaryIO


class ImageReadError(MediaReadError):
    """A file that is not a usable image; the message names the file and the reason."""


@dataclass(frozen=True)
class DecodedImage:
    """What `decode_image` read: the upright RGB pixels, and how the file stored them (for inspect)."""

    image: Image.Image  # 8-bit RGB, EXIF orientation applied, cropped when a box was given
    format: str  # as stored: JPEG, PNG, ...
    mode: str  # colour mode as stored (CMYK, I;16, P, ...), before conversion to RGB


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def decode_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    box: Box | None = None,
    margin: float = 0.0,
    draft: int | None = None,
) -> DecodedImage:
    """Decode `source` to an 8-bit RGB image, upright, optionally cropped to `box` (+ `margin`).

    `draft` lets a JPEG decode at a reduced scale no smaller than draft x draft (for thumbnails/models).
    `max_pixels` is checked on the header, before any pixel is decoded; Pillow's own decompression-bomb
    limit (`Image.MAX_IMAGE_PIXELS`, untouched here) still refuses larger images while opening.

    Raises ImageReadError naming the file for anything that is not a whole image of an allowed format.
    """
    name = str(source) if isinstance(source, str | Path) else getattr(source, "name", "<uploaded image>")
    try:
        with Image.open(source) as im:
            if im.format not in ALLOWED_FORMATS:
                raise ImageReadError(name, f"format {im.format} is not an allowed image format")
            stored_format, stored_mode = im.format, im.mode  # before draft or load can change the mode
            width, height = im.size
            if width * height > max_pixels:
                raise ImageReadError(
                    name, f"{width}x{height} pixels is over the limit of {max_pixels} (decompression bomb?)"
                )
            if draft and box is None and im.format == "JPEG":
                im.draft("RGB", (draft, draft))  # decode at a reduced DCT scale: much faster, still >= draft
            im.load()
            rgb = to_rgb(ImageOps.exif_transpose(im))
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(name, "not an image (unrecognised file contents)") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(name, f"decompression bomb refused ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason:
            reason = "truncated file (image data ends early)"
        raise ImageReadError(name, reason) from None
    if box is not None:
        rgb = rgb.crop(crop_box(box, rgb.size, margin))
    return DecodedImage(rgb, stored_format, stored_mode)


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    box: Box | None = None,
    margin: float = 0.0,
    draft: int | None = None,
) -> Image.Image:
    """The RGB image of `decode_image`, for callers that do not need the stored format and mode."""
    return decode_image(source, max_pixels=max_pixels, box=box, margin=margin, draft=draft).image


def load_pixels(
    source: ImageSource,
    image_size: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    box: Box | None = None,
    margin: float = 0.0,
) -> np.ndarray:
    """Model input pixels, HWC uint8 image_size x image_size: decoded at the smallest JPEG scale that is
    still at least image_size (draft), then `transforms.preprocess`. The training cache and the
    Predictor both call this, so a model sees the same pixels in training and in serving."""
    image = load_image(source, max_pixels=max_pixels, box=box, margin=margin, draft=image_size)
    return preprocess(image, image_size)


def crop_box(box: Box, size: tuple[int, int], margin: float = 0.0) -> tuple[int, int, int, int]:
    """The pixel rectangle of `box` grown by `margin` (a fraction of its size) and clamped to the image."""
    xmin, ymin, xmax, ymax = box
    width, height = size
    dx, dy = (xmax - xmin) * margin, (ymax - ymin) * margin
    left = max(0, round(xmin - dx))
    top = max(0, round(ymin - dy))
    right = min(width, round(xmax + dx))
    bottom = min(height, round(ymax + dy))
    if right <= left or bottom <= top:  # a box outside the image: keep the whole image
        return 0, 0, width, height
    return left, top, right, bottom


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without the usual traps (16-bit white-out, black alpha)."""
    if im.mode == "RGB":
        return im.copy() if im.readonly else im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_to_rgb(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # CMYK, YCbCr, LAB, HSV, P, L, 1: Pillow's own conversions are correct for these.
    return im.convert("RGB")


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    """Scale a 16-bit or 32-bit greyscale image to 8 bits (Pillow would clip it to white)."""
    arr = np.asarray(im).astype(np.float64)
    if im.mode.startswith("I;16") or (
        im.mode == "I" and arr.min(initial=0) >= 0 and arr.max(initial=0) <= 65535
    ):
        scale_max = 65535.0
        arr = arr / scale_max * 255.0
    else:  # float or wide integer data: stretch its own range
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        arr = (arr - lo) / (hi - lo or 1.0) * 255.0
    grey = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    return grey.convert("RGB")
