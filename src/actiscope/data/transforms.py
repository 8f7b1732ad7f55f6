"""Preprocessing and augmentation, built from a model's DataConfig and nothing else.

`preprocess` is the only path from a decoded image to model pixels: the training cache, evaluation and
the Predictor all call it, so train and serve cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch
    from torchvision.transforms import v2

    from actiscope.data.config import DataConfig

Pixels = TypeVar("Pixels", np.ndarray, "torch.Tensor")


def preprocess(image: Image.Image, image_size: int) -> np.ndarray:
    """The whole image resized to image_size x image_size (the aspect is squashed, nothing is cut
    off: an action at the edge of a photo stays in view), as HWC uint8."""
    return np.array(image.resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.uint8)


class Normalize:
    """uint8 CHW (or NCHW, TCHW) pixels -> float32 scaled to [0, 1] and normalised per channel, as
    (x / 255 - mean) / std folded into one scale and one shift. Takes a numpy array (prediction, which
    never imports torch: seconds of start-up on two cores) or a tensor (training's augmentation); both
    do the same two float32 operations, so they give the same numbers."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        std_ = np.asarray(std, dtype=np.float64).reshape(-1, 1, 1)
        self.scale = (1 / (255 * std_)).astype(np.float32)
        self.shift = (np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1) / std_).astype(np.float32)

    def __call__(self, pixels: Pixels) -> Pixels:
        if isinstance(pixels, np.ndarray):
            out = pixels.astype(np.float32)
            out *= self.scale
            out -= self.shift
            return out
        import torch

        return (
            pixels.to(torch.float32, copy=True)
            .mul_(torch.from_numpy(self.scale))
            .sub_(torch.from_numpy(self.shift))
        )


def normalize(config: DataConfig) -> Normalize:
    return Normalize(config.mean, config.std)


def train_transform(config: DataConfig, preset: str) -> v2.Compose:
    """Augmentation presets on uint8 CHW tensors, then normalisation."""
    from torchvision.transforms import v2

    size = config.image_size
    flip = v2.RandomHorizontalFlip()
    steps: list[v2.Transform] = {
        "none": [],
        "light": [v2.RandomResizedCrop(size, scale=(0.8, 1.0), antialias=True), flip],
        "standard": [
            v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
            flip,
            v2.RandomRotation(10),
            v2.ColorJitter(0.2, 0.2, 0.2),
        ],
        "strong": [
            v2.RandomResizedCrop(size, scale=(0.25, 1.0), antialias=True),
            flip,
            v2.TrivialAugmentWide(),
        ],
    }[preset]
    after = [v2.RandomErasing(p=0.25)] if preset == "strong" else []
    return v2.Compose([*steps, normalize(config), *after])


def eval_transform(config: DataConfig) -> Normalize:
    return normalize(config)


def hflip_tta(batch: np.ndarray) -> np.ndarray:
    """Horizontally flipped copy of a normalised NCHW batch (test-time augmentation)."""
    return np.ascontiguousarray(batch[..., ::-1])
