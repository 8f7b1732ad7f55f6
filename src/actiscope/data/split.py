"""`actiscope data split`: a stratified, reproducible split that keeps duplicate groups together.

The manifest (split.json) lists every file with its split and label; training and evaluation read
it, so a run's test images are known forever after. Unreadable files are listed as dropped, with why.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from actiscope.data.formats import Dataset, Sample
from actiscope.data.scan import FileScan, connected_groups, duplicate_groups, scan_files
from actiscope.data.video import DEFAULT_LIMITS, VideoLimits
from actiscope.errors import DataError
from actiscope.files import atomic_write_text

SPLITS = ("train", "val", "test")
UCF_NAME = re.compile(r"^v_(?P<action>.+)_g(?P<group>\d+)_c\d+$", re.IGNORECASE)
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class SplitEntry:
    path: str  # relative to the manifest's root when the file is inside it
    label: str
    split: str
    box: tuple[float, float, float, float] | None = None


@dataclass
class SplitManifest:
    root: str
    format: str
    kind: str
    seed: int
    val: float
    test: float
    classes: list[str]
    entries: list[SplitEntry]
    dropped: list[dict[str, str]] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    def samples(self, split: str) -> list[Sample]:
        root = Path(self.root)
        return [Sample(root / e.path, e.label, e.box, e.split) for e in self.entries if e.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        table = {s: Counter(e.label for e in self.entries if e.split == s) for s in SPLITS}
        return {s: {c: table[s][c] for c in self.classes} for s in SPLITS}

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> SplitManifest:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            entries = [
                SplitEntry(e["path"], e["label"], e["split"], _box(e.get("box"))) for e in raw.pop("entries")
            ]
            manifest = cls(entries=entries, **raw)
        except FileNotFoundError:
            raise DataError(
                f"{path}: no such split manifest; create one with `actiscope data split`"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{path}: not a valid split manifest ({exc}); recreate it with `actiscope data split`"
            ) from None
        if manifest.version != MANIFEST_VERSION:
            raise DataError(f"{path}: split manifest version {manifest.version} is not supported")
        return manifest


def _box(value: object) -> tuple[float, float, float, float] | None:
    if not value:
        return None
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise TypeError(f"a box is four numbers, got {value!r}")
    xmin, ymin, xmax, ymax = (float(v) for v in value)
    return xmin, ymin, xmax, ymax


def make_split(
    dataset: Dataset,
    *,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    max_distance: int = 4,
    workers: int | None = None,
    scans: list[FileScan] | None = None,
    limits: VideoLimits = DEFAULT_LIMITS,
) -> SplitManifest:
    """Split `dataset` into train/val/test, stratified by class, duplicates kept in one split.

    A layout that defines its own split (train/test folders, Stanford 40) keeps it; val is then
    carved out of train, and train copies of val/test images are dropped (they would leak). `scans`:
    the files already scanned (else they are scanned here, clips within `limits`).
    """
    for name, value in (("--val", val), ("--test", test)):
        if not 0 <= value < 1:
            raise DataError(f"{name} {value} must be a fraction in [0, 1)")
    if val + test >= 1:
        raise DataError(f"--val {val} + --test {test} leaves nothing to train on; keep their sum under 1")
    if not dataset.labelled:
        raise DataError(f"{dataset.root}: the dataset has no labels, so it cannot be split for training")

    if scans is None:
        scans = scan_files([s.path for s in dataset.samples], workers=workers, limits=limits)
    dropped = [{"path": s.path, "reason": s.error} for s in scans if s.error is not None]
    usable = [i for i, s in enumerate(scans) if s.ok and dataset.samples[i].label is not None]
    units = _units(usable, [scans[i] for i in usable], max_distance)
    samples = dataset.samples
    rng = random.Random(seed)

    if dataset.predefined_split:
        assigned, leak_drops = _keep_predefined(units, samples)
        dropped += leak_drops
        if val > 0 and not any(samples[i].split == "val" for u in units for i in u):
            train_units = [u for u in units if assigned[u[0]] == "train"]
            for unit, split in _allocate(train_units, samples, {"val": val, "test": 0.0}, rng).items():
                for i in unit:
                    assigned[i] = split
    else:
        assigned = {
            i: split
            for unit, split in _allocate(units, samples, {"val": val, "test": test}, rng).items()
            for i in unit
        }

    root = dataset.root.resolve()
    entries = sorted(
        (
            SplitEntry(_relative(samples[i].path, root), str(samples[i].label), split, samples[i].box)
            for i, split in assigned.items()  # only labelled samples are assigned (usable, above)
        ),
        key=lambda e: (e.split, e.label, e.path),
    )
    classes = sorted({e.label for e in entries})
    return SplitManifest(str(root), dataset.format, dataset.kind, seed, val, test, classes, entries, dropped)


def _units(indices: list[int], scans: list[FileScan], max_distance: int) -> list[tuple[int, ...]]:
    """Indivisible groups of sample indices: a duplicate group is one unit, so are the clips of one UCF
    group (`v_<Class>_g<group>_c<clip>`: same actors and background); others stand alone."""
    by_recording: dict[str, list[int]] = defaultdict(list)  # positions in `indices`, like the groups
    for n, scan in enumerate(scans):
        match = UCF_NAME.match(Path(scan.path).stem)
        if match:
            by_recording[f"{match['action'].lower()}/{match['group']}"].append(n)
    together = [*duplicate_groups(scans, max_distance=max_distance), *by_recording.values()]
    units = connected_groups(len(indices), together)
    return sorted(tuple(sorted(indices[n] for n in unit)) for unit in units)


def _keep_predefined(
    units: list[tuple[int, ...]], samples: list[Sample]
) -> tuple[dict[int, str], list[dict[str, str]]]:
    """Keep the layout's split; in a group that spans splits keep the evaluation copies, drop the rest."""
    rank = {"test": 0, "val": 1, "train": 2}
    assigned: dict[int, str] = {}
    dropped: list[dict[str, str]] = []
    for unit in units:
        splits = {samples[i].split or "train" for i in unit}
        keep = min(splits, key=rank.__getitem__)
        for i in unit:
            split = samples[i].split or "train"
            if split == keep:
                assigned[i] = split
            else:
                witness = next(samples[j].path for j in unit if (samples[j].split or "train") == keep)
                dropped.append(
                    {"path": str(samples[i].path), "reason": f"duplicate of {keep} image {witness}"}
                )
    return assigned, dropped


def _allocate(
    units: list[tuple[int, ...]], samples: list[Sample], ratios: dict[str, float], rng: random.Random
) -> dict[tuple[int, ...], str]:
    """Per class, deal shuffled units into the split whose quota is furthest from full."""
    by_class: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for unit in units:
        label = Counter(str(samples[i].label) for i in unit).most_common(1)[0][0]
        by_class[label].append(unit)  # units hold labelled samples only
    result: dict[tuple[int, ...], str] = {}
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        total = sum(len(u) for u in members)
        wanted = [s for s, r in ratios.items() if r > 0]
        if len(members) < len(wanted) + 1:
            raise DataError(
                f"class {label!r} has {len(members)} usable image(s) (after grouping duplicates); a split with "
                f"{' and '.join(['train', *wanted])} needs at least {len(wanted) + 1}: add images or remove the class"
            )
        quota = {s: max(1, round(ratios[s] * total)) for s in wanted}
        filled = dict.fromkeys(quota, 0)
        train_units = 0
        for n, unit in enumerate(members):
            open_splits = [s for s in quota if filled[s] < quota[s]]
            is_last = n == len(members) - 1
            if not open_splits or (is_last and train_units == 0):  # train always gets at least one
                result[unit] = "train"
                train_units += 1
                continue
            split = max(open_splits, key=lambda s: (quota[s] - filled[s]) / quota[s])
            result[unit] = split
            filled[split] += len(unit)
    return result


def _relative(path: Path, root: Path) -> str:
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(root))
    except ValueError:
        return str(resolved)
