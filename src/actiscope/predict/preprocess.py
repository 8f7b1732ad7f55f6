"""model.json's preprocessing, through the same functions training uses: images.load_pixels (a file, as
the training cache decodes it) or images.to_rgb + transforms.preprocess (a picture in memory), then
transforms.Normalize; a clip goes through video.clip_frames (the evaluation frames of its pool).
A model trained on person crops (model.json's `person_crop`) is given the crop of the person box,
wherever the caller knows one, with the margin it was trained with (images.crop_box, as training did).

Pixels are numpy arrays here: nothing on this path imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from actiscope.data.images import Box, crop_box, load_pixels, to_rgb
from actiscope.data.transforms import Normalize, preprocess
from actiscope.data.video import DEFAULT_LIMITS, VideoLimits, VideoReadError, clip_frames
from actiscope.package import PackageMeta

ImageInput = str | Path | BinaryIO | Image.Image | np.ndarray


class Preprocessor:
    """Any image input to a normalised float32 CHW array (a clip: TCHW), exactly as training evaluated.

    Small and picklable, so decoding processes get this and never the model. They run `pixels_uint8`
    (uint8: a quarter of float32's memory to share); `normalize` then runs on the whole batch. Clips are
    refused past `video_limits`, checked on the header before a frame is decoded. A `box` given with an
    image is used only when the model was trained on person crops (`person_crop`, the margin): a model
    trained on whole images is given the whole image.
    """

    def __init__(self, meta: PackageMeta, *, video_limits: VideoLimits | None = None) -> None:
        self.image_size = meta.image_size
        self.frames = meta.frames if meta.kind == "video" else None
        self.video_limits = video_limits or DEFAULT_LIMITS
        self.normalize = Normalize(tuple(meta.mean), tuple(meta.std))
        self.person_crop = meta.person_crop

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape `pixels_uint8` returns: (3, size, size), for a clip (frames, 3, size, size)."""
        image = (3, self.image_size, self.image_size)
        return (self.frames, *image) if self.frames else image

    def crops(self, box: Box | None) -> bool:
        """Whether an image with this box (None: none known) is given as its person crop."""
        return box is not None and self.person_crop is not None and not self.frames

    def pixels_uint8(self, source: ImageInput, box: Box | None = None) -> np.ndarray:
        """uint8 CHW (a clip: TCHW) pixels, before normalisation; `box`: the person box, if known."""
        if self.frames:
            return self._clip_uint8(source, self.frames)
        margin = self.person_crop or 0.0
        box = box if self.crops(box) else None
        if isinstance(source, np.ndarray):
            source = Image.fromarray(source.astype(np.uint8))
        if isinstance(source, Image.Image):  # the colour conversion of a file: alpha on white, 16-bit scaled
            rgb = to_rgb(source)
            if box is not None:
                rgb = rgb.crop(crop_box(box, rgb.size, margin))
            pixels = preprocess(rgb, self.image_size)
        else:
            pixels = load_pixels(source, self.image_size, box=box, margin=margin)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    def _clip_uint8(self, source: ImageInput, frames: int) -> np.ndarray:
        """A clip file, upload or (T, H, W, 3) array to the model's frames, as training evaluated."""
        if isinstance(source, Image.Image):
            raise VideoReadError("<image>", "this is a video model; give it a clip, not an image")
        chosen = clip_frames(source, self.image_size, frames, limits=self.video_limits)
        return np.ascontiguousarray(chosen.transpose(0, 3, 1, 2))

    def __call__(self, source: ImageInput, box: Box | None = None) -> np.ndarray:
        return self.normalize(self.pixels_uint8(source, box))
