"""Preprocessing and augmentation, built from a model's DataConfig and nothing else.

`preprocess` is the only path from a decoded image to model pixels: the training cache, evaluation and
the Predictor all call it, so train and serve cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from actiscope.models.registry import DataConfig

if TYPE_CHECKING:
    from torchvision.transforms import v2


def preprocess(image: Image.Image, image_size: int) -> np.ndarray:
    """The whole image resized to image_size x image_size (the aspect is squashed, nothing is cut
    off: an action at the edge of a photo stays in view), as HWC uint8."""
    return np.array(image.resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.uint8)


class Normalize:
    """uint8 CHW (or NCHW) tensor -> float tensor scaled to [0, 1] and normalised per channel. Plain
    torch, so prediction does not import torchvision (seconds of start-up on two cores)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.to(torch.float32) / 255.0 - self.mean) / self.std


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


def hflip_tta(batch: torch.Tensor) -> torch.Tensor:
    """Horizontally flipped copy of a normalised NCHW batch (test-time augmentation)."""
    return torch.flip(batch, dims=[-1])
