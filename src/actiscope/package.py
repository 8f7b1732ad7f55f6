"""The model package: model.safetensors + model.json. Loading it needs no pickle and no training state.

model.json holds everything needed to predict: architecture, input kind, image size, frames per clip,
normalisation, the person crop the model was trained on, class names in index order, actiscope version
and the headline metrics.

An ensemble is a package too: its model.json lists `members`, and each member is a whole package of its
own under `members/<name>/` (model.safetensors + model.json), so a member can be loaded, evaluated or
explained alone. The members must share the classes and the input (kind, image size, frames,
normalisation, resize, person crop): each image is then decoded once for all of them, and the ensemble is
one network (models.ensemble: the mean of the members' probabilities) that exports to one ONNX graph.
The ensemble's own model.json repeats that shared input, so a reader that only preprocesses needs no
member. Exports of the whole ensemble (model.onnx, ...) sit beside its model.json as for any package.

Format 2 added `person_crop` and `members`; a format-1 package reads as a single model trained on whole
images.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actiscope.errors import ActiscopeError
from actiscope.files import atomic_output, atomic_write_text
from actiscope.run import CompareDir, RunDir
from actiscope.version import __version__

if TYPE_CHECKING:  # reading model.json (the ONNX backend) needs no torch
    from actiscope.models.ensemble import EnsembleModel
    from actiscope.models.registry import ActionModel

PACKAGE_FORMAT = 2
WEIGHTS_FILE, META_FILE = "model.safetensors", "model.json"
MEMBERS_DIR = "members"  # an ensemble's member packages, one folder each
# Files derived from the weights by `actiscope export`; saving new weights removes them, so a package
# never pairs new weights with an old export.
ONNX_FILE, INT8_FILE, TORCHSCRIPT_FILE = "model.onnx", "model.int8.onnx", "model.torchscript.pt"
EXPORT_FILES = (ONNX_FILE, INT8_FILE, TORCHSCRIPT_FILE)


class PackageError(ActiscopeError):
    pass


class EnsembleInputError(PackageError):
    """Would-be members that take different inputs (size, frames, normalisation or crop)."""


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
    # the margin around the person box the model was trained on (--crop-person), None: whole images
    person_crop: float | None = None
    members: list[str] = field(default_factory=list)  # an ensemble's member folders under MEMBERS_DIR
    actiscope_version: str = __version__
    created: str = ""
    package_format: int = PACKAGE_FORMAT

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)

    def input_description(self) -> str:
        """What the model takes, in words: "128 px, person crops (margin 0.1)"."""
        size = f"{self.image_size} px" + (f", {self.frames} frames" if self.kind == "video" else "")
        crop = "whole images" if self.person_crop is None else f"person crops (margin {self.person_crop:g})"
        return f"{size}, {crop}"


def save_package(
    model: ActionModel,
    directory: Path,
    *,
    class_names: list[str],
    metrics: dict[str, Any] | None = None,
    weights: dict[str, str] | None = None,
    person_crop: float | None = None,
) -> PackageMeta:
    """Write the deployable package; model.json goes last, so its presence means the package is whole.
    `person_crop`: the margin of the person crops the model was trained on (None: whole images)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    if len(class_names) != model.num_classes:
        raise PackageError(f"{len(class_names)} class names for a model with {model.num_classes} outputs")
    config = model.data_config
    meta = PackageMeta(
        architecture=model.architecture,
        kind=model.kind,
        image_size=config.image_size,
        mean=list(config.mean),
        std=list(config.std),
        class_names=list(class_names),
        frames=config.frames,
        metrics=metrics or {},
        weights=weights or {},
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        person_crop=None if model.kind == "video" else person_crop,
    )
    _clear(directory)
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


def _clear(directory: Path) -> None:
    """Make `directory` ready for a new package: no model.json (the package is not whole until the new
    one is written), no export of other weights, no members of another ensemble."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (META_FILE, *EXPORT_FILES):
        (directory / stale).unlink(missing_ok=True)
    shutil.rmtree(directory / MEMBERS_DIR, ignore_errors=True)


# The fields that make two packages take the same input: one decoded batch serves them all.
INPUT_FIELDS = ("kind", "image_size", "frames", "mean", "std", "resize", "person_crop")


def save_ensemble(
    members: Sequence[str | Path], directory: Path, *, metrics: dict[str, Any] | None = None
) -> PackageMeta:
    """Write an ensemble package of the packages `members` into `directory`: each member copied whole
    (weights and model.json, no exports) into MEMBERS_DIR/<n>-<architecture>, model.json last.
    Raises PackageError when the members do not share classes (EnsembleInputError: inputs)."""
    if len(members) < 2:
        raise PackageError(f"an ensemble needs at least two member packages, got {len(members)}")
    sources = [package_dir(m) for m in members]
    inside = [s for s in sources if s.resolve().is_relative_to(Path(directory).resolve())]
    if inside:
        raise PackageError(
            f"{inside[0]} is inside {directory}, which is about to be replaced; copy it out first"
        )
    metas = [read_meta(s) for s in sources]
    _check_members(list(zip(map(str, sources), metas, strict=True)), directory)
    first = metas[0]
    names = [f"{i}-{m.architecture.replace('/', '-').replace(':', '-')}" for i, m in enumerate(metas, 1)]
    _clear(directory)
    for source, name in zip(sources, names, strict=True):
        target = directory / MEMBERS_DIR / name
        target.mkdir(parents=True)
        shutil.copyfile(source / WEIGHTS_FILE, target / WEIGHTS_FILE)
        shutil.copyfile(source / META_FILE, target / META_FILE)  # last: the member is whole
    meta = replace(
        first,
        architecture="ensemble(" + "+".join(m.architecture for m in metas) + ")",
        members=names,
        metrics=metrics or {},
        exports={},
        weights={},
        actiscope_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        package_format=PACKAGE_FORMAT,
    )
    atomic_write_text(directory / META_FILE, json.dumps(asdict(meta), indent=2))
    return meta


def _check_members(members: list[tuple[str, PackageMeta]], where: Path) -> None:
    """Members of one ensemble: single models with the same classes and input as the first."""
    for path, meta in members:
        if meta.is_ensemble:
            raise PackageError(f"{path} is an ensemble itself; build {where} from its members instead")
    _agree(members[0], members[1:])


def _agree(reference: tuple[str, PackageMeta], others: list[tuple[str, PackageMeta]]) -> None:
    """Each of `others` has the classes and the input of `reference`."""
    first_path, first = reference
    for path, meta in others:
        if meta.class_names != first.class_names:
            raise PackageError(
                f"{path} has classes {', '.join(meta.class_names)} and {first_path} has "
                f"{', '.join(first.class_names)}: an ensemble averages the same classes, in the same order"
            )
        differ = [f for f in INPUT_FIELDS if getattr(meta, f) != getattr(first, f)]
        if differ:
            raise EnsembleInputError(
                f"{path} takes {meta.input_description()} and {first_path} {first.input_description()} "
                f"({', '.join(differ)} differ): the members of an ensemble take one input; train them at "
                "one --image-size (and the same --crop-person)"
            )


def member_dirs(directory: Path, meta: PackageMeta) -> list[Path]:
    """The member package folders of the ensemble at `directory` ([] for a single model)."""
    return [directory / MEMBERS_DIR / name for name in meta.members]


def record_export(directory: Path, filename: str, check: dict[str, Any]) -> PackageMeta:
    """Note an exported file and how it was checked in model.json (rewritten atomically)."""
    meta = read_meta(directory)
    return _rewrite(directory, replace(meta, exports={**meta.exports, filename: check}))


def record_metrics(directory: Path, metrics: dict[str, Any]) -> PackageMeta:
    """Add headline metrics to model.json (an ensemble's, once it is evaluated); rewritten atomically."""
    meta = read_meta(directory)
    return _rewrite(directory, replace(meta, metrics={**meta.metrics, **metrics}))


def _rewrite(directory: Path, meta: PackageMeta) -> PackageMeta:
    atomic_write_text(directory / META_FILE, json.dumps(asdict(meta), indent=2))
    return meta


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
    """model.json of the package at `path`, validated strictly (an ensemble's members with it)."""
    directory = package_dir(path)
    meta = _parse_meta(directory / META_FILE)
    if meta.is_ensemble:
        _check_ensemble(directory, meta)
    return meta


def _parse_meta(meta_path: Path) -> PackageMeta:
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{meta_path}: unreadable ({exc}); re-export the package from its run") from None
    if not isinstance(raw, dict):
        raise PackageError(f"{meta_path}: not a model description (expected a JSON object)")
    if isinstance(raw.get("package_format"), int) and raw["package_format"] > PACKAGE_FORMAT:
        raise PackageError(
            f"{meta_path}: package format {raw['package_format']} is newer than this actiscope reads; upgrade actiscope"
        )
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
    crop = meta.person_crop
    if crop is not None and (
        isinstance(crop, bool) or not isinstance(crop, int | float) or not 0 <= crop < math.inf
    ):
        raise PackageError(
            f"{meta_path}: person_crop must be null (whole images) or the crop margin, a number of 0 or more"
        )
    if crop is not None and meta.kind == "video":
        raise PackageError(f"{meta_path}: person_crop is for image models; a video model has null")
    if not isinstance(meta.members, list) or not all(_plain_name(m) for m in meta.members):
        raise PackageError(f"{meta_path}: members must be a list of folder names under {MEMBERS_DIR}/")
    return meta


def _plain_name(name: object) -> bool:
    """A folder name that stays inside MEMBERS_DIR (no separators, no `..`)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _check_ensemble(directory: Path, meta: PackageMeta) -> None:
    """An ensemble's model.json agrees with its members: at least two, each a whole single-model package
    with the ensemble's classes and input."""
    where = directory / META_FILE
    if len(meta.members) < 2 or len(set(meta.members)) != len(meta.members):
        raise PackageError(f"{where}: an ensemble lists at least two distinct members")
    members = []
    for folder in member_dirs(directory, meta):
        if not (folder / META_FILE).is_file():
            raise PackageError(f"{where}: its member {folder} is missing; the package is damaged")
        members.append((str(folder), _parse_meta(folder / META_FILE)))
    _check_members(members, directory)
    _agree((str(where), meta), members)


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


def load_package(path: str | Path) -> tuple[ActionModel | EnsembleModel, PackageMeta]:
    """Rebuild the model from model.json and load model.safetensors into it (strictly); an ensemble's
    members each so, in one EnsembleModel."""
    directory = package_dir(path)
    meta = read_meta(directory)
    if meta.is_ensemble:
        from actiscope.models.ensemble import EnsembleModel

        members = [_load_single(d, read_meta(d)) for d in member_dirs(directory, meta)]
        return EnsembleModel(members, architecture=meta.architecture).eval(), meta
    return _load_single(directory, meta), meta


def _load_single(directory: Path, meta: PackageMeta) -> ActionModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from actiscope.models.registry import create_model

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
    return model.eval()


def check_weights(directory: Path, meta: PackageMeta) -> None:
    """The weights file is whole and is the one model.json describes, read without torch: its header
    parses, its tensors cover the file exactly (a truncated or padded file fails), and it names the
    architecture model.json names (`save_package` records it)."""
    from safetensors import SafetensorError, safe_open

    if meta.is_ensemble:  # its weights are its members'
        for member in member_dirs(directory, meta):
            check_weights(member, read_meta(member))
        return
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
