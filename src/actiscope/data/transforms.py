"""Preprocessing and augmentation, built from a model's DataConfig and nothing else.

`preprocess` is the only path from a decoded image to model pixels: the training cache, evaluation and
the Predictor all call it, so train and serve cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from actiscope.models.registry import DataConfig


def preprocess(image: Image.Image, image_size: int) -> np.ndarray:
    """The whole image resized to image_size x image_size (the aspect is squashed, nothing is cut
    off: an action at the edge of a photo stays in view), as HWC uint8."""
    return np.array(image.resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.uint8)


def normalize(config: DataConfig) -> v2.Compose:
    """uint8 CHW tensor -> normalised float tensor."""
    return v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(config.mean), list(config.std))]
    )


def train_transform(config: DataConfig, preset: str) -> v2.Compose:
    """Augmentation presets on uint8 CHW tensors, then normalisation."""
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


def eval_transform(config: DataConfig) -> v2.Compose:
    return normalize(config)


def hflip_tta(batch: torch.Tensor) -> torch.Tensor:
    """Horizontally flipped copy of a normalised NCHW batch (test-time augmentation)."""
    return torch.flip(batch, dims=[-1])
