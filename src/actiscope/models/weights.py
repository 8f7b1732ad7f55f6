"""Pretrained weights: found offline first (the hubs' caches, actiscope's store), downloaded otherwise.

A classifier of another size is dropped (our head stays freshly initialised), never special-cased per
architecture. A file of another architecture is refused with a summary of what did not fit. Every load
reports its provenance (where the tensors came from and the sha256 of that file) for model.json.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.error import URLError

import torch

from actiscope.models.entry import ModelEntry
from actiscope.models.registry import ActionModel, get_entry, list_models
from actiscope.models.store import StoredWeights, WeightsError, WeightsStore, sha256_file, weights_store

log = logging.getLogger(__name__)

# Prefixes that wrappers add in front of the architecture's own key names.
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.", "backbone.")
HUB_LABELS = {"imagenet": "ImageNet", "kinetics": "Kinetics-400"}
HUB_CLASSES = {"imagenet": 1000, "kinetics": 400}  # the head a complete published file has
HUB_NAMES = tuple(HUB_LABELS)


@dataclass(frozen=True)
class LoadReport:
    loaded: int  # backbone tensors taken from the file
    head_loaded: bool
    unexpected: list[str]  # keys in the file that fit nothing (logged, not fatal)
    head_classes: int | None = None  # classes of the file's own head, when it takes our features
    # where the tensors came from: name (imagenet, kinetics, file), source, sha256 and file (model.json)
    provenance: dict[str, str] = field(default_factory=dict)


def load_weights(model: ActionModel, spec: str | Path | None) -> LoadReport | None:
    """Apply `spec` to `model`: None/"none" (scratch), "imagenet"/"kinetics" (hub), or a local file path."""
    if spec is None or str(spec) == "none":
        return None
    if str(spec) in HUB_NAMES:
        state, provenance = hub_state_dict(model.architecture, str(spec))
        source = f"{model.architecture} {HUB_LABELS[str(spec)]} weights ({provenance['source']})"
    else:
        path = Path(spec).expanduser()
        state = read_state_dict(path)
        provenance = _provenance("file", f"file {path}", path)
        source = str(path)
    report = replace(apply_state_dict(model, state, source), provenance=provenance)
    log.info(
        "loaded %d backbone tensors from %s (head %s)",
        report.loaded,
        source,
        "loaded" if report.head_loaded else "new: class count differs",
    )
    return report


def weights_provenance(report: LoadReport | None) -> dict[str, str]:
    """What model.json records as the starting weights of a run (`load_weights`' report, or scratch)."""
    return dict(report.provenance) if report is not None else {"name": "none", "source": "none"}


def hub_state_dict(
    architecture: str, name: str = "imagenet", store: WeightsStore | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """`architecture`'s published weights and their provenance: from the hub's cache, then actiscope's
    store, then a download (which the hub caches)."""
    entry = get_entry(architecture)
    if entry.pretrained is None or entry.pretrained_name != name:
        has = f" (it has {HUB_LABELS[entry.pretrained_name]} weights)" if entry.pretrained is not None else ""
        raise WeightsError(
            f"{architecture} has no published {HUB_LABELS[name]} weights{has}; use --weights none or PATH"
        )
    cached = entry.hub_cached()
    if cached is not None:
        return read_state_dict(cached[1]), _provenance(name, *cached)
    stored = _stored(entry, store or weights_store())
    if stored is not None:
        return read_state_dict(stored.file), _provenance(name, "actiscope store", stored.file, stored.sha256)
    try:
        state = entry.pretrained()
    except (URLError, OSError, ConnectionError, RuntimeError, ValueError) as exc:
        raise WeightsError(
            f"no {HUB_LABELS[name]} weights for {architecture} here and no network ({type(exc).__name__}): "
            f"copy the file in and run `actiscope weights import FILE --model {entry.weights_owner}`, "
            "or pass it with --weights PATH, or train with --weights none"
        ) from None
    downloaded = entry.hub_cached()  # the hub's copy of what it just fetched
    return state, (
        _provenance(name, "download", downloaded[1])
        if downloaded
        else {"name": name, "source": "download", "sha256": "", "file": ""}
    )


def resolve_auto(architecture: str, store: WeightsStore | None = None) -> tuple[str, str]:
    """`--weights auto`: the architecture's published weights where they can be had here (a hub cache,
    the store, or a download), else "none"; with the reason in words when it is none."""
    entry = get_entry(architecture)
    if entry.pretrained is None:
        return "none", f"{architecture} has no published pretrained weights"
    try:
        hub_state_dict(architecture, entry.pretrained_name, store)
    except WeightsError as exc:
        return "none", str(exc)
    return entry.pretrained_name, ""


def _stored(entry: ModelEntry, store: WeightsStore) -> StoredWeights | None:
    """The store's copy of `entry`'s weights, checked against the sha256 recorded at import."""
    stored = store.lookup(entry.weights_owner, entry.pretrained_name)
    if stored is not None and sha256_file(stored.file) != stored.sha256:
        raise WeightsError(
            f"{stored.file} changed since it was imported (sha256 differs from the sidecar's); "
            f"run `actiscope weights import {stored.origin} --model {stored.architecture}` again"
        )
    return stored


def _provenance(name: str, source: str, path: Path, sha256: str | None = None) -> dict[str, str]:
    return {"name": name, "source": source, "sha256": sha256 or sha256_file(path), "file": str(path)}


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
    except pickle.UnpicklingError as exc:  # torch's weights-only unpickler refused it, or not a pickle
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        raise WeightsError(
            f"{path}: not a readable weights file: it pickles {code[1]}, not only tensors, and loading it could "
            "run code (refused unloaded); save a plain state dict or .safetensors"
            if code
            else f"{path}: not a readable weights file (not a torch state-dict file, or damaged)"
        ) from None
    except Exception as exc:  # torch/safetensors raise many types for a bad file; all mean the same here
        first = str(exc).strip().partition("\n")[0]
        raise WeightsError(
            f"{path}: not a readable weights file ({type(exc).__name__}: {first})"[:300]
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):  # Lightning and training-script checkpoints
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightsError(f"{path}: holds no state dict of tensors")
    return raw


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
    return LoadReport(len(matched), head_loaded, unexpected, _head_classes(head_state, model.num_features))


def _head_classes(head_state: dict[str, torch.Tensor], num_features: int) -> int | None:
    """How many classes the file's classifier has, if it takes our features (a linear layer, or
    SqueezeNet's 1x1 convolution)."""
    weight, bias = head_state.get("weight"), head_state.get("bias")
    if weight is None or weight.ndim < 2 or weight.shape[1] != num_features or set(weight.shape[2:]) - {1}:
        return None
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        return None
    return int(weight.shape[0])


def import_weights(path: Path, architecture: str, store: WeightsStore | None = None) -> StoredWeights:
    """Check that `path` holds `architecture`'s complete published weights (every backbone tensor and
    the original head, by name and shape), then keep a safetensors copy in the store."""
    entry = get_entry(architecture)
    if entry.weights_of:
        raise WeightsError(
            f"{architecture} starts from {entry.weights_of}'s weights: import them with --model {entry.weights_of}"
        )
    if entry.pretrained is None:
        raise WeightsError(
            f"{architecture} has no published weights to import; to start from {path}, train with --weights {path}"
        )
    name = entry.pretrained_name
    classes = HUB_CLASSES[name]
    state = read_state_dict(path)
    report = apply_state_dict(ActionModel(entry, classes), state, str(path))  # another architecture: refused
    if report.unexpected:
        raise WeightsError(
            f"{path} does not fit {architecture}: {len(report.unexpected)} keys it does not have "
            f"(e.g. {', '.join(report.unexpected[:3])}); is it another architecture's file?"
        )
    if report.head_classes != classes:
        found = f"a {report.head_classes}-class head" if report.head_classes else "no head that fits"
        raise WeightsError(
            f"{path} has the {architecture} backbone but {found}, not the {classes}-class {HUB_LABELS[name]} one; "
            f"a fine-tuned file is not the published weights: train from it with --weights {path}"
        )
    stored = (store or weights_store()).put(entry.name, name, state, path)
    log.info("%s: %d backbone tensors and the %d-class head checked", path, report.loaded, classes)
    return stored


@dataclass(frozen=True)
class Availability:
    model: str
    weights: str  # "ImageNet", "Kinetics-400", or "" when none are published
    where: str  # "torchvision hub cache", "store (sha256 …)", "downloadable", "none published"


def weights_availability(store: WeightsStore | None = None) -> list[Availability]:
    """For every image model and every video model with published weights: are they here, and where?"""
    store = store or weights_store()
    rows = []
    for entry in list_models():
        if entry.pretrained is None:
            if entry.kind == "image":
                rows.append(Availability(entry.name, "", "none published"))
            continue
        label = HUB_LABELS[entry.pretrained_name]
        cached = entry.hub_cached()
        stored = None if cached else store.lookup(entry.weights_owner, entry.pretrained_name)
        where = cached[0] if cached else f"store (sha256 {stored.sha256[:12]}…)" if stored else "downloadable"
        rows.append(Availability(entry.name, label, where))
    return rows


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
