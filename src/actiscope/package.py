"""The model package: model.safetensors + model.json. Loading it needs no pickle and no training state.

model.json holds everything needed to predict: architecture, input kind, image size, frames per clip,
normalisation, class names in index order, actiscope version and the headline metrics.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actiscope import __version__
from actiscope.errors import ActiscopeError
from actiscope.files import atomic_output, atomic_write_text
from actiscope.run import CompareDir, RunDir

if TYPE_CHECKING:  # reading model.json (the ONNX backend) needs no torch
    from actiscope.models.registry import ActionModel

PACKAGE_FORMAT = 1
WEIGHTS_FILE, META_FILE = "model.safetensors", "model.json"
# Files derived from the weights by `actiscope export`; saving new weights removes them, so a package
# never pairs new weights with an old export.
ONNX_FILE, INT8_FILE, TORCHSCRIPT_FILE = "model.onnx", "model.int8.onnx", "model.torchscript.pt"
EXPORT_FILES = (ONNX_FILE, INT8_FILE, TORCHSCRIPT_FILE)


class PackageError(ActiscopeError):
    pass


@dataclass(frozen=True)
class PackageMeta:
    architecture: str
    kind: str
    image_size: int
    mean: list[float]
    std: list[float]
    class_names: list[str]
    frames: int | None = None
    resize: str = "squash"  # whole image resized to image_size x image_size (transforms.preprocess)
    metrics: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)  # export file -> its check (export.py)
    # the starting weights: name, source, sha256, file (models.weights.weights_provenance); {} if unrecorded
    weights: dict[str, str] = field(default_factory=dict)
    actiscope_version: str = __version__
    created: str = ""
    package_format: int = PACKAGE_FORMAT


def save_package(
    model: ActionModel,
    directory: Path,
    *,
    class_names: list[str],
    metrics: dict[str, Any] | None = None,
    weights: dict[str, str] | None = None,
) -> PackageMeta:
    """Write the deployable package; model.json goes last, so its presence means the package is whole."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    if len(class_names) != model.num_classes:
        raise PackageError(f"{len(class_names)} class names for a model with {model.num_classes} outputs")
    config = model.data_config
    meta = PackageMeta(
        architecture=model.architecture, kind=model.kind, image_size=config.image_size,
        mean=list(config.mean), std=list(config.std), class_names=list(class_names), frames=config.frames,
        metrics=metrics or {}, weights=weights or {}, created=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    for stale in EXPORT_FILES:
        (directory / stale).unlink(missing_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_output(directory / WEIGHTS_FILE) as tmp:
        try:
            save_file(state, str(tmp), metadata={"architecture": model.architecture})
        except SafetensorError as exc:  # its I/O errors come as text: a full disk is an OSError again
            code = re.search(r"\(os error (\d+)\)", str(exc))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(tmp)) from exc
    atomic_write_text(directory / META_FILE, json.dumps(asdict(meta), indent=2))
    return meta


def record_export(directory: Path, filename: str, check: dict[str, Any]) -> PackageMeta:
    """Note an exported file and how it was checked in model.json (rewritten atomically)."""
    meta = read_meta(directory)
    updated = replace(meta, exports={**meta.exports, filename: check})
    atomic_write_text(directory / META_FILE, json.dumps(asdict(updated), indent=2))
    return updated


def package_dir(path: str | Path) -> Path:
    """A package directory from a package dir, a run dir (its model/), or a model.json path."""
    path = Path(path).expanduser()
    if path.is_file() and path.name == META_FILE:
        return path.parent
    run = RunDir(path)
    if run.has_model():
        return run.model
    if (path / META_FILE).is_file():
        return path
    if not path.exists():
        raise PackageError(f"{path}: no such model package or run directory")
    raise PackageError(
        f"{path}: no {META_FILE} here or in {run.model}; give a model package or run directory"
    )


def package_split(directory: Path) -> Path | None:
    """The split manifest the package at `directory` was trained on: its run's or, for the copy of the
    winner a comparison keeps, the comparison's shared split. None for a stand-alone package."""
    run = RunDir.of_package(directory)
    if run is not None:
        return run.split
    comparison = CompareDir(directory.parent)
    if directory.name == comparison.best.name and comparison.split.is_file():
        return comparison.split
    return None


def read_meta(path: str | Path) -> PackageMeta:
    meta_path = package_dir(path) / META_FILE
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{meta_path}: unreadable ({exc}); re-export the package from its run") from None
    if not isinstance(raw, dict):
        raise PackageError(f"{meta_path}: not a model description (expected a JSON object)")
    required = ["architecture", "kind", "image_size", "mean", "std", "class_names"]
    missing = [k for k in required if k not in raw]
    if missing:
        raise PackageError(f"{meta_path}: missing field(s) {', '.join(missing)}; the package is damaged")
    known = {f.name for f in fields(PackageMeta)}
    try:
        meta = PackageMeta(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        raise PackageError(f"{meta_path}: {exc}") from None
    names = meta.class_names
    if (
        not isinstance(names, list)
        or len(names) < 2
        or len(set(names)) != len(names)
        or not all(isinstance(n, str) for n in names)
    ):
        raise PackageError(f"{meta_path}: class_names must be a list of at least two distinct names")
    if not (
        isinstance(meta.image_size, int)
        and meta.image_size > 0
        and len(meta.mean) == 3
        and len(meta.std) == 3
    ):
        raise PackageError(f"{meta_path}: image_size, mean or std is not valid")
    if not isinstance(meta.weights, dict) or not all(isinstance(v, str) for v in meta.weights.values()):
        raise PackageError(f"{meta_path}: weights must be an object of strings (where the training started)")
    if meta.kind not in ("image", "video") or (meta.kind == "video" and not isinstance(meta.frames, int)):
        raise PackageError(f"{meta_path}: kind must be image or video (with frames per clip)")
    if meta.package_format > PACKAGE_FORMAT:
        raise PackageError(
            f"{meta_path}: package format {meta.package_format} is newer than this actiscope reads; upgrade actiscope"
        )
    return meta


def describe_weights(weights: dict[str, str]) -> str:
    """The starting weights in words, for report.md and the dashboard: "imagenet (actiscope store, ...)"."""
    if not weights:
        return "not recorded"
    if weights.get("source") == "none":
        return "none (trained from scratch)"
    sha = f"sha256 {weights['sha256'][:12]}…" if weights.get("sha256") else "sha256 unknown"
    if weights.get("name") == "file":  # its source already names the file
        return f"{weights.get('source')} ({sha})"
    return f"{weights.get('name')} ({weights.get('source')}, {sha})"


def load_package(path: str | Path) -> tuple[ActionModel, PackageMeta]:
    """Rebuild the model from model.json and load model.safetensors into it (strictly)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from actiscope.models.registry import create_model

    directory = package_dir(path)
    meta = read_meta(directory)
    model = create_model(
        meta.architecture, len(meta.class_names), image_size=meta.image_size, frames=meta.frames
    )
    weights = directory / WEIGHTS_FILE
    try:
        state = load_file(str(weights))
    except (OSError, SafetensorError) as exc:
        raise PackageError(f"{weights}: cannot read the weights ({exc})") from None
    # load_state_dict casts: an edited header that relabels float32 bytes as int32 would load as nonsense
    own = model.state_dict()
    recast = [k for k, v in state.items() if k in own and v.dtype != own[k].dtype]
    if recast:
        raise PackageError(
            f"{weights}: {recast[0]} is {state[recast[0]].dtype}, not {own[recast[0]].dtype}: the file is damaged "
            "or edited; export the package again from its run"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)[:200]]
        raise PackageError(
            f"{weights} does not match model.json ({meta.architecture}, {len(meta.class_names)} classes): {first[0].strip()}"
        ) from None
    return model.eval(), meta


def check_weights(directory: Path, meta: PackageMeta) -> None:
    """The weights file is whole and is the one model.json describes, read without torch: its header
    parses, its tensors cover the file exactly (a truncated or padded file fails), and it names the
    architecture model.json names (`save_package` records it)."""
    from safetensors import SafetensorError, safe_open

    weights = directory / WEIGHTS_FILE
    try:
        with safe_open(str(weights), framework="numpy") as reader:
            named = (reader.metadata() or {}).get("architecture")
    except (OSError, SafetensorError) as exc:
        raise PackageError(f"{weights}: cannot read the weights ({exc}); the package is damaged") from None
    if named is not None and named != meta.architecture:
        raise PackageError(
            f"{weights} holds {named} weights but {directory / META_FILE} says {meta.architecture}; "
            "the package is damaged"
        )
