"""`actiscope data inspect`: what is in a dataset and what is wrong with it.

Never stops at the first bad file: every file is scanned, every problem is collected with its path.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from actiscope.data.formats import Dataset
from actiscope.data.scan import FileScan, duplicate_groups, scan_files
from actiscope.data.video import DEFAULT_LIMITS, VideoLimits
from actiscope.files import atomic_output, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class DuplicateGroup:
    files: list[str]
    kind: str  # "exact" (same bytes) or "near" (perceptual hash)
    labels: list[str | None]
    splits: list[str | None]

    @property
    def crosses_splits(self) -> bool:
        return len({s for s in self.splits if s is not None}) > 1

    @property
    def conflicting_labels(self) -> bool:
        return len({label for label in self.labels if label is not None}) > 1


@dataclass
class InspectReport:
    root: str
    format: str
    kind: str
    num_files: int
    classes: dict[str, int]
    imbalance_ratio: float | None
    splits: dict[str, int]
    image_stats: dict[str, object]
    unreadable: list[dict[str, str]]
    missing: list[dict[str, object]]
    ignored: list[str]
    label_typos: list[dict[str, object]]
    duplicates: list[DuplicateGroup]
    notes: list[str] = field(default_factory=list)

    @property
    def leakage(self) -> list[DuplicateGroup]:
        return [g for g in self.duplicates if g.crosses_splits or g.conflicting_labels]

    @property
    def has_problems(self) -> bool:
        """Files that cannot be used, or leakage: inspect exits 1."""
        return bool(self.unreadable or self.missing or self.leakage)

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["duplicates"] = [
            {**asdict(g), "crosses_splits": g.crosses_splits, "conflicting_labels": g.conflicting_labels}
            for g in self.duplicates
        ]
        out["leakage_groups"] = len(self.leakage)
        out["has_problems"] = self.has_problems
        return out


def inspect_dataset(
    dataset: Dataset,
    *,
    max_distance: int = 4,
    workers: int | None = None,
    limits: VideoLimits = DEFAULT_LIMITS,
    progress: Callable[[int, int], object] | None = None,
) -> InspectReport:
    """Scan every file of `dataset` (clips within `limits`) and collect statistics and problems;
    `progress(done, total)` is told as files are scanned."""
    samples = dataset.samples
    scans = scan_files([s.path for s in samples], workers=workers, limits=limits, progress=progress)
    counts = dataset.class_counts()
    groups = [
        DuplicateGroup(
            files=[str(samples[i].path) for i in g],
            kind="exact" if len({scans[i].md5 for i in g}) == 1 else "near",
            labels=[samples[i].label for i in g],
            splits=[samples[i].split for i in g],
        )
        for g in duplicate_groups(scans, max_distance=max_distance)
    ]
    return InspectReport(
        root=str(dataset.root),
        format=dataset.format,
        kind=dataset.kind,
        num_files=len(samples),
        classes=counts,
        imbalance_ratio=(max(counts.values()) / min(counts.values())) if counts else None,
        splits=dict(Counter(s.split for s in samples if s.split is not None)),
        image_stats=image_statistics(scans),
        unreadable=[{"path": s.path, "reason": s.error} for s in scans if s.error is not None],
        missing=[{"row": m.row, "filename": m.filename} for m in dataset.missing],
        ignored=[str(p) for p in dataset.ignored],
        label_typos=label_typos(counts),
        duplicates=groups,
        notes=list(dataset.notes),
    )


def image_statistics(scans: list[FileScan]) -> dict[str, object]:
    good = [s for s in scans if s.ok and s.width]
    if not good:
        return {}
    widths = np.array([s.width for s in good])
    heights = np.array([s.height for s in good])

    def summary(values: np.ndarray) -> dict[str, float]:
        return {"min": values.min().item(), "median": float(np.median(values)), "max": values.max().item()}

    stats: dict[str, object] = {
        "width": summary(widths),
        "height": summary(heights),
        "formats": dict(Counter(s.format for s in good).most_common()),  # clips: codecs
        "mean_file_kb": round(float(np.mean([s.size_bytes for s in good])) / 1024, 1),
    }
    if any(s.duration is not None for s in good):  # clips
        stats["duration_s"] = summary(np.array([s.duration or 0.0 for s in good]))
        stats["fps"] = summary(np.array([s.fps or 0.0 for s in good]))
    else:
        stats["modes"] = dict(Counter(s.mode for s in good).most_common())
    return stats


def label_typos(counts: dict[str, int]) -> list[dict[str, object]]:
    """Pairs of labels where the rarer one looks like a misspelling of the other (`runing`/`running`)."""
    found = []
    names = sorted(counts, key=lambda n: (-counts[n], n))
    for i, common in enumerate(names):
        for rare in names[i + 1 :]:
            if _normalise(rare) == _normalise(common):
                distance = 0
            else:
                distance = _edit_distance(rare.lower(), common.lower())
                if distance > max(1, min(len(rare), len(common)) // 6):
                    continue
            found.append({"label": rare, "count": counts[rare], "looks_like": common, "distance": distance})
    return found


def _normalise(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch.isalnum())


def _edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def write_report(report: InspectReport, dataset: Dataset, out_dir: Path, *, per_class: int = 4) -> list[Path]:
    """Write inspect.json and samples.png into out_dir; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "inspect.json"
    atomic_write_text(json_path, json.dumps(report.to_dict(), indent=2, default=str))
    written = [json_path]
    if dataset.kind == "image" and dataset.labelled:
        bad = {u["path"] for u in report.unreadable}
        grid = out_dir / "samples.png"
        if write_sample_grid(dataset, grid, per_class=per_class, skip=bad):
            written.append(grid)
    return written


def write_sample_grid(
    dataset: Dataset, path: Path, *, per_class: int = 4, skip: set[str], seed: int = 0
) -> bool:
    """A grid with one row per class and `per_class` random readable images in it, labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from actiscope.data.images import ImageReadError, load_image

    rng = random.Random(seed)
    classes = dataset.classes
    if not classes:
        return False
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(per_class * 1.8, len(classes) * 1.8), squeeze=False
    )
    for row, name in enumerate(classes):
        pool = [s for s in dataset.samples if s.label == name and str(s.path) not in skip]
        chosen = rng.sample(pool, min(per_class, len(pool)))
        for col in range(per_class):
            ax = axes[row][col]
            ax.axis("off")
            if col < len(chosen):
                try:
                    image = load_image(chosen[col].path, box=chosen[col].box)
                except ImageReadError:
                    continue
                image.thumbnail((160, 160))
                ax.imshow(image)
            if col == 0:
                ax.set_title(name, fontsize=9, loc="left")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return True
