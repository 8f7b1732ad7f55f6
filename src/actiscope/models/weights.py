"""Pretrained weights: from the torchvision/timm hubs when online, from a local file otherwise.

A classifier of another size is dropped (our head stays freshly initialised), never special-cased per
architecture. A file of another architecture is refused with a summary of what did not fit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import torch

from actiscope.errors import ActiscopeError
from actiscope.models.registry import ActionModel, get_entry

log = logging.getLogger(__name__)

# Prefixes that wrappers add in front of the architecture's own key names.
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.", "backbone.")
HUB_LABELS = {"imagenet": "ImageNet", "kinetics": "Kinetics-400"}
HUB_NAMES = tuple(HUB_LABELS)


class WeightsError(ActiscopeError):
    pass


@dataclass(frozen=True)
class LoadReport:
    loaded: int  # backbone tensors taken from the file
    head_loaded: bool
    unexpected: list[str]  # keys in the file that fit nothing (logged, not fatal)


def load_weights(model: ActionModel, spec: str | Path | None) -> LoadReport | None:
    """Apply `spec` to `model`: None/"none" (scratch), "imagenet"/"kinetics" (hub), or a local file path."""
    if spec is None or str(spec) == "none":
        return None
    if str(spec) in HUB_NAMES:
        state = _hub_state_dict(model.architecture, str(spec))
        source = f"{model.architecture} {HUB_LABELS[str(spec)]} weights"
    else:
        path = Path(spec).expanduser()
        state = read_state_dict(path)
        source = str(path)
    report = apply_state_dict(model, state, source)
    log.info("loaded %d backbone tensors from %s (head %s)", report.loaded, source,
             "loaded" if report.head_loaded else "new: class count differs")  # fmt: skip
    return report


def _hub_state_dict(architecture: str, name: str = "imagenet") -> dict[str, torch.Tensor]:
    entry = get_entry(architecture)
    if entry.pretrained is None or entry.pretrained_name != name:
        has = f" (it has {HUB_LABELS[entry.pretrained_name]} weights)" if entry.pretrained is not None else ""
        raise WeightsError(
            f"{architecture} has no published {HUB_LABELS[name]} weights{has}; use --weights none or PATH"
        )
    try:
        return entry.pretrained()
    except (URLError, OSError, ConnectionError, RuntimeError, ValueError) as exc:
        raise WeightsError(
            f"cannot get {HUB_LABELS[name]} weights for {architecture} ({type(exc).__name__}: no network or no cached copy); "
            "download them on a connected machine and pass the file with --weights PATH, or train with --weights none"
        ) from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a torch state-dict/checkpoint file (never unpickles code)."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: object = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a bad file; all mean the same here
        raise WeightsError(
            f"{path}: not a readable weights file ({type(exc).__name__}: {exc})"[:300]
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):  # Lightning and training-script checkpoints
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightsError(f"{path}: holds no state dict of tensors")
    return raw  # type: ignore[return-value]


def apply_state_dict(model: ActionModel, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Load backbone tensors by name; the original classifier goes to our head only if it has our shape."""
    own = model.backbone.state_dict()
    state = _strip_prefixes(state, set(own))
    scope = get_entry(model.architecture).pretrained_scope
    if scope and not any(k in own for k in state):  # an image model's file for a per-frame network
        state = {scope + k: v for k, v in state.items()}
    partial = bool(scope) and all(k.startswith(scope) for k in state)
    if partial:  # only the per-frame network is pretrained; the rest keeps its initialisation
        own = {k: v for k, v in own.items() if k.startswith(scope)}
    head_prefix = f"{model.classifier_key}." if model.classifier_key else "head."

    def is_head(key: str) -> bool:  # the architecture's classifier, or our own head (never an image
        # model's classifier inside a per-frame network: it does not fit a video head)
        return (
            not partial
            and key not in own
            and (key.startswith(head_prefix) or key in ("head.weight", "head.bias"))
        )

    matched = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    wrong_shape = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and k not in matched
    ]
    missing = [k for k in own if k not in matched]
    unexpected = [k for k in state if k not in own and not is_head(k)]
    if missing or wrong_shape:
        parts = (
            [f"{len(missing)} of {len(own)} backbone tensors missing (e.g. {', '.join(missing[:3])})"]
            if missing
            else []
        )
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} of another shape (e.g. {wrong_shape[0]})")
        if unexpected:
            parts.append(
                f"{len(unexpected)} keys this model does not have (e.g. {', '.join(unexpected[:3])})"
            )
        raise WeightsError(
            f"{source} does not fit {model.architecture}: {'; '.join(parts)}; is it another architecture's file?"
        )
    model.backbone.load_state_dict(matched, strict=not partial)

    head_state = {k.rpartition(".")[2]: v for k, v in state.items() if is_head(k)}
    head = model.head.state_dict()
    head_loaded = head_state.keys() == head.keys() and all(head_state[k].shape == head[k].shape for k in head)
    if head_loaded:
        model.head.load_state_dict(head_state)
    if unexpected:
        log.info("%s: %d keys not used (e.g. %s)", source, len(unexpected), ", ".join(unexpected[:3]))
    return LoadReport(len(matched), head_loaded, unexpected)


def _strip_prefixes(state: dict[str, torch.Tensor], own_keys: set[str]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (DDP's module., Lightning's model., our backbone.) until keys match."""
    for _ in range(3):
        if any(k in own_keys for k in state):
            return state
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) or k.startswith("head.") for k in state) and any(
                k.startswith(prefix) for k in state
            ):
                state = {k.removeprefix(prefix): v for k, v in state.items()}
                break
    return state
