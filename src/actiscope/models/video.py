"""Video architectures. Every one takes clips as (N, T, 3, H, W) and returns pooled features.

- `convlstm`: stacked ConvLSTM cells with pooling and dropout (the seed's UCF50 model).
- `cnn-lstm`, `cnn-gru`: an image network from the registry on every frame, then an LSTM/GRU over time;
  `cnn-lstm:resnet18` picks the per-frame network (default: the small custom CNN).
- `frame-avg`: the per-frame network's features averaged over time. The head is linear, so this is
  exactly the average of per-frame logits: the baseline with no temporal modelling at all.
- `r3d_18`, `r2plus1d_18`, `mc3_18`: torchvision's 3D CNNs (Kinetics-400 weights with --weights kinetics).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from actiscope.data.config import DataConfig
from actiscope.models.entry import Backbone, ModelEntry, UnknownModelError
from actiscope.models.image import SIMPLE_CNN, torchvision_entry

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
DEFAULT_FRAME_MODEL = SIMPLE_CNN


class ConvLSTMCell(nn.Module):
    def __init__(self, in_channels: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvLSTM(nn.Module):
    """ConvLSTM layers, each followed by 2x2 max pooling and dropout on every time step (the seed's
    Keras ConvLSTM2D -> MaxPooling3D(1, 2, 2) -> TimeDistributed(Dropout)); the last layer's state at
    the last time step, averaged over space, is the clip's feature vector."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), dropout: float = 0.2) -> None:
        super().__init__()
        channels = [3, *widths]
        self.cells = nn.ModuleList(ConvLSTMCell(a, b) for a, b in zip(channels, widths, strict=False))
        self.widths = list(widths)  # each cell's hidden channels
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(dropout)
        self.num_features = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence = list(x.unbind(1))
        for cell, hidden in zip(self.cells, self.widths, strict=True):
            # zeros shaped from the input, so the batch size stays dynamic in an ONNX export
            h = c = torch.zeros_like(sequence[0][:, :1]).repeat(1, hidden, 1, 1)
            out = []
            for frame in sequence:
                h, c = cell(frame, (h, c))
                out.append(self.drop(self.pool(h)))
            sequence = out
        return sequence[-1].mean((2, 3))


def convlstm() -> Backbone:
    net = ConvLSTM()
    return Backbone(net, net.num_features, classifier="", cam_layer="")


class PerFrame(nn.Module):
    """An image network on every frame, then `temporal`: "lstm", "gru" (last output) or "avg"."""

    def __init__(self, frame: Backbone, temporal: str, hidden: int = 256) -> None:
        super().__init__()
        self.frame = frame.module
        self.temporal = temporal
        self.rnn: nn.Module | None = None
        if temporal == "avg":
            self.num_features = frame.num_features
        else:
            rnn = nn.LSTM if temporal == "lstm" else nn.GRU
            self.rnn = rnn(frame.num_features, hidden, batch_first=True)
            self.num_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.frame(x.flatten(0, 1))
        features = features.reshape(x.shape[0], x.shape[1], -1)
        if self.rnn is None:
            return features.mean(1)
        out, _ = self.rnn(features)
        return out[:, -1]


PER_FRAME = {
    "cnn-lstm": ("lstm", "an image network per frame, then an LSTM over time"),
    "cnn-gru": ("gru", "an image network per frame, then a GRU over time"),
    "frame-avg": ("avg", "an image network per frame, logits averaged: no temporal modelling"),
}


def _per_frame_backbone(temporal: str, build_frame: Callable[[], Backbone]) -> Backbone:
    frame = build_frame()
    net = PerFrame(frame, temporal)
    cam = f"frame.{frame.cam_layer}" if frame.cam_layer else "frame"
    return Backbone(net, net.num_features, classifier="", cam_layer=cam)


def per_frame_entry(base: str, image: ModelEntry) -> ModelEntry:
    """`cnn-lstm:resnet18` and the like: the per-frame network is any image model (the registry looks
    `image` up, so that this module never imports it)."""
    temporal, description = PER_FRAME[base]
    if image.kind != "image":
        raise UnknownModelError(f"{base}:{image.name}: the per-frame network must be an image model")
    data_config = DataConfig(image.data_config.image_size, image.data_config.mean, image.data_config.std, 16)
    pretrained = None
    if image.pretrained is not None:
        hub = image.pretrained

        def pretrained() -> dict[str, torch.Tensor]:
            return {f"frame.{k}": v for k, v in hub().items()}

    return ModelEntry(
        f"{base}:{image.name}",
        "video",
        functools.partial(_per_frame_backbone, temporal, image.build),
        data_config,
        f"{description} ({image.name})",
        pretrained,
        image.pretrained_name,
        "frame.",
        hub_file=image.hub_file,
        weights_of=image.name,
    )


def _time_second(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """torchvision's 3D CNNs take (N, C, T, H, W); clips here are (N, T, C, H, W). A pre-hook instead of
    a wrapper keeps the state-dict keys torchvision's, so Kinetics weight files load as they are."""
    return (args[0].transpose(1, 2),)


VIDEO_CNNS = {
    "r3d_18": "ResNet3D-18 (3D convolutions)",
    "r2plus1d_18": "R(2+1)D-18 (spatial then temporal convolutions)",
    "mc3_18": "MC3-18 (3D convolutions early, 2D late)",
}


def _torchvision_video(name: str) -> Backbone:
    import torchvision

    net = torchvision.models.get_model(name, weights=None)
    num_features = net.fc.in_features
    net.fc = nn.Identity()
    net.register_forward_pre_hook(_time_second)
    return Backbone(net, num_features, classifier="fc", cam_layer="layer4")


# The video architectures, in the order `actiscope models` lists them.
ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        "convlstm",
        "video",
        convlstm,
        DataConfig(64, frames=20),
        "stacked ConvLSTM cells with pooling and dropout (the seed's UCF50 model)",
    ),
    *(
        ModelEntry(
            name,
            "video",
            functools.partial(_per_frame_backbone, temporal, DEFAULT_FRAME_MODEL.build),
            DataConfig(112, frames=16),
            f"{description} (default {DEFAULT_FRAME_MODEL.name}; {name}:IMAGE_MODEL for another)",
        )
        for name, (temporal, description) in PER_FRAME.items()
    ),
    *(
        torchvision_entry(
            name,
            "video",
            functools.partial(_torchvision_video, name),
            DataConfig(112, KINETICS_MEAN, KINETICS_STD, frames=16),
            description,
            pretrained_name="kinetics",
        )
        for name, description in VIDEO_CNNS.items()
    ),
)
