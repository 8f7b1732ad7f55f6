"""Several trained models as one: the mean of their class probabilities (package.py stores it).

The output is the logarithm of that mean, so it can stand wherever logits do: its softmax *is* the mean
of the members' softmaxes (the log of probabilities that sum to one), and the Predictor, the ONNX export
and the accuracy checks need nothing of their own for an ensemble. It is computed as a logsumexp of the
members' log-softmaxes, which stays finite where a probability underflows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from actiscope.data.config import DataConfig
from actiscope.errors import ActiscopeError
from actiscope.models.registry import ActionModel


class EnsembleModel(nn.Module):
    """Members that take the same input and predict the same classes; forward: log of their mean
    probabilities. Exposes what the runtimes ask of a model: architecture, kind, data_config,
    num_classes, to_channels_last."""

    def __init__(self, members: Sequence[ActionModel], *, architecture: str) -> None:
        super().__init__()
        if len(members) < 2:
            raise ActiscopeError(f"an ensemble needs at least two members, got {len(members)}")
        first = members[0]
        for member in members[1:]:
            if (member.kind, member.data_config, member.num_classes) != (
                first.kind,
                first.data_config,
                first.num_classes,
            ):
                raise ActiscopeError(
                    f"ensemble members {first.architecture} and {member.architecture} differ in input "
                    "or number of classes"
                )
        self.members = nn.ModuleList(members)
        self.architecture = architecture
        self.kind = first.kind
        self.data_config: DataConfig = first.data_config
        self.num_classes = first.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(m(x).float(), dim=1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))

    def to_channels_last(self) -> EnsembleModel:
        """As ActionModel.to_channels_last: image models in the layout CPUs run 2D convolutions fastest in."""
        return self.to(memory_format=torch.channels_last) if self.kind == "image" else self
