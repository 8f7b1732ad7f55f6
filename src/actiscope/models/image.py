"""Image architectures: a small custom CNN, the torchvision classics, and any timm model by name.

Each builder returns the architecture with its classifier removed, plus where that classifier lived
(so pretrained heads can be matched) and which layer Grad-CAM should look at.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from actiscope.data.config import DataConfig
from actiscope.models.entry import Backbone, ModelEntry, UnknownModelError
from actiscope.models.store import hf_hub_file, torch_hub_file, torchvision_cached


class SimpleCNN(nn.Module):
    """The "build your own" baseline: conv/BN/ReLU pairs with pooling, global average pool."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))


def simple_cnn() -> Backbone:
    net = SimpleCNN()
    return Backbone(net, net.num_features, classifier="", cam_layer="features")


SIMPLE_CNN = ModelEntry(
    "simple-cnn", "image", simple_cnn, DataConfig(128), "small custom CNN (8 conv layers), the baseline"
)


# name: (classifier path in torchvision's model, Grad-CAM layer, default input size, description)
TORCHVISION_MODELS: dict[str, tuple[str, str, int, str]] = {
    "vgg16": ("classifier.6", "features.29", 224, "VGG-16 (Simonyan & Zisserman 2014)"),
    "resnet18": ("fc", "layer4", 224, "ResNet-18"),
    "resnet50": ("fc", "layer4", 224, "ResNet-50"),
    "googlenet": ("fc", "inception5b", 224, "GoogLeNet / Inception v1"),
    "densenet121": ("classifier", "features", 224, "DenseNet-121"),
    "efficientnet_b0": ("classifier.1", "features.8", 224, "EfficientNet-B0"),
    "efficientnet_b3": ("classifier.1", "features.8", 300, "EfficientNet-B3"),
    "mobilenet_v3_large": ("classifier.3", "features.16", 224, "MobileNetV3-Large"),
    "convnext_tiny": ("classifier.2", "features.7", 224, "ConvNeXt-Tiny"),
    "mobilenet_v2": ("classifier.1", "features.18", 224, "MobileNetV2"),
    "squeezenet1_0": ("classifier.1", "features", 224, "SqueezeNet 1.0"),
    "squeezenet1_1": ("classifier.1", "features", 224, "SqueezeNet 1.1"),
    "shufflenet_v2_x1_0": ("fc", "conv5", 224, "ShuffleNetV2 1.0x"),
    "regnet_y_400mf": ("fc", "trunk_output", 224, "RegNetY-400MF"),
    "mnasnet1_0": ("classifier.1", "layers", 224, "MNASNet 1.0"),
}


def _torchvision_backbone(name: str) -> Backbone:
    import torchvision

    classifier, cam_layer, _, _ = TORCHVISION_MODELS[name]
    extra = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    try:
        net = torchvision.models.get_model(name, weights=None, **extra)
    except NotImplementedError:  # RegNet computes its widths with tensors, unreadable on the meta device
        with torch.device("cpu"):
            net = torchvision.models.get_model(name, weights=None, **extra)
        net = net.to(torch.get_default_device())  # where the caller builds (meta: shapes only)
    head = net.get_submodule(classifier)
    if isinstance(head, nn.Conv2d):
        # SqueezeNet classifies with a 1x1 convolution on the feature map, then pools: its backbone is
        # the features, pooled. Sequential keeps the key names (features.*), so hub files load as they are.
        features = net.get_submodule("features")
        net = nn.Sequential(
            OrderedDict(features=features, pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten())
        )
        return Backbone(net, head.in_channels, classifier=classifier, cam_layer=cam_layer)
    assert isinstance(head, nn.Linear), f"{name}.{classifier} is not the classifier"
    parent_name, _, leaf = classifier.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, leaf, nn.Identity())
    return Backbone(net, head.in_features, classifier=classifier, cam_layer=cam_layer)


def _torchvision_weights(name: str) -> dict[str, torch.Tensor]:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    return weights.get_state_dict(progress=True, check_hash=True)


def torchvision_entry(
    name: str,
    kind: str,
    build: Callable[[], Backbone],
    data_config: DataConfig,
    description: str,
    pretrained_name: str = "imagenet",
) -> ModelEntry:
    """A torchvision architecture, image or video: its default published weights come from torchvision's
    hub and are found offline where torchvision caches them."""
    return ModelEntry(
        name,
        kind,
        build,
        data_config,
        f"{description} (torchvision)",
        pretrained=functools.partial(_torchvision_weights, name),
        pretrained_name=pretrained_name,
        hub_file=functools.partial(torchvision_cached, name),
    )


# The image architectures, in the order `actiscope models` lists them.
ENTRIES: tuple[ModelEntry, ...] = (
    SIMPLE_CNN,
    *(
        torchvision_entry(
            name, "image", functools.partial(_torchvision_backbone, name), DataConfig(size), description
        )
        for name, (_, _, size, description) in TORCHVISION_MODELS.items()
    ),
)


def _rgb(values: Sequence[float]) -> tuple[float, float, float]:
    red, green, blue = values
    return float(red), float(green), float(blue)


def timm_entry(name: str) -> ModelEntry:
    """A registry entry for any timm model, made on request (timm has over a thousand)."""
    import timm

    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join('timm/' + c for c in close)}?" if close else "see timm.list_models()"
        raise UnknownModelError(f"unknown timm model {name!r}: {hint}")
    cfg = timm.models.get_pretrained_cfg(name)
    size = cfg.input_size[-1] if cfg and cfg.input_size else 224
    data_config = DataConfig(size, _rgb(cfg.mean), _rgb(cfg.std)) if cfg else DataConfig(size)

    def build() -> Backbone:
        net = timm.create_model(name, pretrained=False, num_classes=0)
        feature_info = getattr(net, "feature_info", None)
        cam_layer = feature_info[-1]["module"] if feature_info else ""
        classifier = (cfg.classifier if cfg and isinstance(cfg.classifier, str) else "") or "head"
        features = net.num_features
        assert isinstance(features, int), f"timm/{name}: num_features {features!r}"
        return Backbone(net, features, classifier=classifier, cam_layer=cam_layer)

    def pretrained() -> dict[str, torch.Tensor]:
        return timm.create_model(name, pretrained=True).state_dict()

    def cached() -> tuple[str, Path] | None:
        # timm downloads from the Hugging Face hub (safetensors first), or from a URL through torch.hub
        if cfg is None:
            return None
        names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin")
        found = (hf_hub_file(cfg.hf_hub_id, names) if cfg.hf_hub_id else None) or (
            torch_hub_file(cfg.url) if isinstance(cfg.url, str) and cfg.url else None
        )
        return ("timm hub cache", found) if found else None

    return ModelEntry(
        f"timm/{name}",
        "image",
        build,
        data_config,
        f"{name} (timm)",
        pretrained,
        hub_file=cached if cfg else None,
    )
