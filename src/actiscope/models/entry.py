"""What an architecture gives the registry: a feature extractor (`Backbone`) and its `ModelEntry`.

The image and video modules build their entries from these types and the registry collects them, so
the imports point one way: entry <- image <- video <- registry, and nothing here imports the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from actiscope.data.config import DataConfig
from actiscope.errors import ActiscopeError


class UnknownModelError(ActiscopeError):
    pass


@dataclass(frozen=True)
class Backbone:
    """A feature extractor that returns pooled features of size `num_features`.

    `classifier` names the key prefix the original architecture's classifier had in its own state
    dict (torchvision `fc`, timm `head.fc`, ...): pretrained weights under that name go to our head.
    `cam_layer` is the module Grad-CAM hooks, as a dotted path inside the backbone.
    """

    module: nn.Module
    num_features: int
    classifier: str
    cam_layer: str


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # "image" or "video"
    build: Callable[[], Backbone]
    data_config: DataConfig
    description: str
    pretrained: Callable[[], dict[str, torch.Tensor]] | None = None  # hub weights (downloads when online)
    pretrained_name: str = "imagenet"  # what `--weights NAME` asks the hub for (video: kinetics)
    pretrained_scope: str = ""  # key prefix the hub weights fill (a video model's per-frame network)
    # The hub's own cached copy of those weights, found without network: (which cache, file) or None.
    hub_file: Callable[[], tuple[str, Path] | None] | None = None
    weights_of: str = ""  # the entry whose published weights these are, when another's (per-frame models)

    @property
    def weights_owner(self) -> str:
        """The architecture the published weights belong to: what the store files them under."""
        return self.weights_of or self.name

    def hub_cached(self) -> tuple[str, Path] | None:
        """The hub's cached copy of the published weights, (which cache, file), or None (no network)."""
        return self.hub_file() if self.hub_file else None
