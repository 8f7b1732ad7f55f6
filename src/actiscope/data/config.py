"""What a model expects as input. The data layer builds transforms from it, the models declare it, and the
Predictor rebuilds preprocessing from the copy in model.json: it lives here, below all of them."""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataConfig:
    """What a model expects as input; transforms and the Predictor are built from this alone."""

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    frames: int | None = None  # clips only
