"""One registry for every architecture, image and video.

A plain dict filled with the entries the image and video modules list (and by `register`, for one
more); a duplicate name is an error; `create_model(name, num_classes)` builds any entry behind the same
interface (`ActionModel`), and a typo gets the closest names. `timm/<name>` reaches any timm model,
and `cnn-lstm:<image model>` any per-frame network, without registering them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from actiscope.data.config import DataConfig
from actiscope.errors import ActiscopeError
from actiscope.models import image, video
from actiscope.models.entry import Backbone, ModelEntry, UnknownModelError

REGISTRY: dict[str, ModelEntry] = {}


def register_entry(entry: ModelEntry) -> ModelEntry:
    if entry.name in REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    REGISTRY[entry.name] = entry
    return entry


def register(
    name: str,
    *,
    kind: str = "image",
    data_config: DataConfig,
    description: str,
    pretrained: Callable[[], dict[str, torch.Tensor]] | None = None,
    pretrained_name: str = "imagenet",
    pretrained_scope: str = "",
    hub_file: Callable[[], tuple[str, Path] | None] | None = None,
) -> Callable[[Callable[[], Backbone]], Callable[[], Backbone]]:
    """A decorator that registers the backbone builder it wraps under `name`."""

    def decorator(build: Callable[[], Backbone]) -> Callable[[], Backbone]:
        register_entry(
            ModelEntry(
                name,
                kind,
                build,
                data_config,
                description,
                pretrained,
                pretrained_name,
                pretrained_scope,
                hub_file,
            )
        )
        return build

    return decorator


for _entry in (*image.ENTRIES, *video.ENTRIES):
    register_entry(_entry)


def get_entry(name: str) -> ModelEntry:
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("timm/"):
        return image.timm_entry(name.removeprefix("timm/"))
    base, colon, frame_model = name.partition(":")
    if colon and base in video.PER_FRAME:
        return video.per_frame_entry(base, get_entry(frame_model))
    close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `actiscope models`"
    raise UnknownModelError(f"unknown model {name!r}: {hint} (any timm model works as timm/<name>)")


def list_models(kind: str | None = None) -> list[ModelEntry]:
    return [e for e in REGISTRY.values() if kind is None or e.kind == kind]


class ActionModel(nn.Module):
    """Every architecture behind one interface: features, head, reset_classifier, data config."""

    def __init__(
        self,
        entry: ModelEntry,
        num_classes: int,
        *,
        image_size: int | None = None,
        frames: int | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        backbone = entry.build()
        self.architecture = entry.name
        self.kind = entry.kind
        self.backbone = backbone.module
        self.num_features = backbone.num_features
        self.classifier_key = backbone.classifier
        self.cam_layer = backbone.cam_layer
        default = entry.data_config
        self.data_config = replace(
            default, image_size=image_size or default.image_size, frames=(frames or default.frames)
        )
        if self.kind == "video" and not self.data_config.frames:
            raise ActiscopeError(f"{entry.name}: a video model needs a number of frames per clip")
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes)
        _fast_batchnorm_statistics(self.backbone)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def to_channels_last(self) -> ActionModel:
        """The channels-last layout that CPUs (oneDNN) run 2D convolutions fastest in; clips keep the
        default layout (their 5D tensors and 3D convolutions have no channels-last form of rank 4)."""
        return self.to(memory_format=torch.channels_last) if self.kind == "image" else self

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)


def _fast_batchnorm_statistics(module: nn.Module, momentum: float = 0.1) -> None:
    """Batch-norm running statistics that follow the data within a CPU budget of a few hundred steps.

    torchvision builds MobileNetV3 (and some timm models) with momentum 0.01, tuned for ImageNet-length
    training: after 400 steps from scratch the running statistics are still mostly the initial ones, and a
    model at 20% training accuracy evaluated at chance (har15, `actiscope compare`). Only the speed at
    which the statistics are tracked changes; weights and inference are unaffected.
    """
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.momentum is not None:
            layer.momentum = max(layer.momentum, momentum)


def create_model(
    name: str,
    num_classes: int,
    *,
    image_size: int | None = None,
    frames: int | None = None,
    drop_rate: float = 0.0,
) -> ActionModel:
    """Build `name` with a fresh head of `num_classes` outputs (weights: see models.weights)."""
    if num_classes < 2:
        raise ActiscopeError(f"a classifier needs at least 2 classes, got {num_classes}")
    return ActionModel(
        get_entry(name), num_classes, image_size=image_size, frames=frames, drop_rate=drop_rate
    )


def example_input(config: DataConfig, batch: int = 1) -> torch.Tensor:
    """A random input of the model's shape: (N, 3, S, S) for images, (N, T, 3, S, S) for clips."""
    size = config.image_size
    shape = (batch, config.frames, 3, size, size) if config.frames else (batch, 3, size, size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))
