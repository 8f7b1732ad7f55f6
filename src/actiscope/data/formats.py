"""Dataset readers: every supported layout becomes the same list of `Sample` records.

Layouts: one folder per class (optionally under train/val/test), a CSV of filename,label beside an
image folder (the Kaggle HAR layout), Stanford 40 Actions (official split, person boxes), and video
folders (UCF50/UCF101). Nothing downstream of this module knows which layout a dataset came from.
"""

from __future__ import annotations

import csv
import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from actiscope.data.images import Box, is_image_path
from actiscope.data.video import is_video_path
from actiscope.errors import DataError

log = logging.getLogger(__name__)

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
FILENAME_COLUMNS = ("filename", "file", "image", "image_path", "path", "img")
LABEL_COLUMNS = ("label", "class", "category", "action", "target")
IMAGE_FOLDER_NAMES = ("images", "Images", "JPEGImages", "img", "imgs")
PREFERRED_CSV_NAMES = ("labels.csv", "Training_set.csv", "train.csv")


@dataclass(frozen=True)
class Sample:
    """One image or clip: where it is, what it shows (None when unlabelled), and optional extras."""

    path: Path
    label: str | None
    box: Box | None = None  # person box (xmin, ymin, xmax, ymax), Stanford 40
    split: str | None = None  # set when the layout itself defines the split
    name: str | None = None  # the file as the dataset listed it (a CSV's filename cell)


@dataclass(frozen=True)
class MissingFile:
    """A CSV row naming a file that is not there."""

    row: int
    filename: str


@dataclass
class Dataset:
    """What a reader found: the samples plus what it had to say about the layout."""

    root: Path
    format: str
    kind: str  # "image" or "video"
    samples: list[Sample]
    missing: list[MissingFile] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # files that are not images/clips
    notes: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted({s.label for s in self.samples if s.label is not None})

    @property
    def labelled(self) -> bool:
        return any(s.label is not None for s in self.samples)

    @property
    def predefined_split(self) -> bool:
        return any(s.split is not None for s in self.samples)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples if s.label is not None)
        return {name: counts[name] for name in self.classes}


Reader = Callable[..., Dataset]
READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    def decorator(fn: Reader) -> Reader:
        if name in READERS:
            raise ValueError(f"dataset format {name!r} is already registered")
        READERS[name] = fn
        return fn

    return decorator


def load_dataset(path: str | Path, format: str | None = None, *, images: str | Path | None = None) -> Dataset:
    """Read the dataset at `path`, detecting its layout unless `format` names one.

    `images` names the image folder of a CSV dataset when it cannot be guessed.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such file or folder; give the path of a dataset folder or CSV file")
    name = format or detect_format(root)
    if name not in READERS:
        raise DataError(f"unknown dataset format {name!r}; choose one of: {', '.join(sorted(READERS))}")
    if images is not None and name != "csv":
        raise DataError(f"--images only applies to CSV datasets, and {root} is in the {name} layout")
    dataset = READERS[name](root, **({"images": images} if images is not None else {}))
    if not dataset.samples:
        raise DataError(f"{root}: no images or clips found in the {name} layout")
    return dataset


def detect_format(root: Path) -> str:
    """Name the layout of `root` from what is on disk."""
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise DataError(f"{root}: a dataset is a folder or a CSV file, not a {root.suffix or 'plain'} file")
    if (root / "JPEGImages").is_dir() and (root / "ImageSplits").is_dir():
        return "stanford40"
    # A CSV at the top wins: its image folder would otherwise pass for a single class folder.
    if list(root.glob("*.csv")):
        return "csv"
    media = _class_folder_media(root)
    if media == "video":
        return "video-folder"
    if media == "image":
        return "folder"
    raise DataError(
        f"{root}: no dataset layout recognised (expected class folders, a CSV of filename,label, "
        "or Stanford 40's JPEGImages/ImageSplits); name it with --format"
    )


def _class_folder_media(root: Path) -> str | None:
    """'image' or 'video' when root holds class folders (possibly under split folders), else None."""
    counts: Counter[str] = Counter()
    for _, class_dir in _class_folders(root):
        for f in class_dir.iterdir():
            if f.is_file():
                counts["video" if is_video_path(f) else "image" if is_image_path(f) else "other"] += 1
    if counts["video"] > counts["image"]:
        return "video"
    return "image" if counts["image"] else None


def _subfolders(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _split_folders(root: Path) -> list[Path]:
    """root's train/val/test folders (by any of their usual names), when the layout has them."""
    return [d for d in _subfolders(root) if d.name.lower() in SPLIT_NAMES]


def _class_folders(root: Path) -> list[tuple[str | None, Path]]:
    """(split, class folder) for root/<class>/, or root/<split>/<class>/ when split folders exist (the
    split then named canonically: train, val or test)."""
    split_dirs = _split_folders(root)
    if not split_dirs:
        return [(None, d) for d in _subfolders(root)]
    return [(SPLIT_NAMES[s.name.lower()], d) for s in split_dirs for d in _subfolders(s)]


def _read_class_folders(root: Path, kind: str, fmt: str) -> Dataset:
    if not root.is_dir():
        raise DataError(f"{root}: the {fmt} layout needs a directory of class folders")
    wanted = is_video_path if kind == "video" else is_image_path
    samples: list[Sample] = []
    ignored: list[Path] = []
    for split, class_dir in _class_folders(root):
        for f in sorted(class_dir.rglob("*")):
            if not f.is_file() or f.name.startswith("."):
                continue
            if wanted(f):
                samples.append(Sample(f, class_dir.name, split=split))
            else:
                ignored.append(f)
    split_dirs = _split_folders(root)
    notes = [f"split defined by folders: {', '.join(d.name for d in split_dirs)}"] if split_dirs else []
    return Dataset(root, fmt, kind, samples, ignored=ignored, notes=notes)


@register_reader("folder")
def read_folder(root: Path) -> Dataset:
    """root/<class>/*.jpg, or root/{train,val,test}/<class>/*.jpg (the folders then define the split)."""
    return _read_class_folders(root, "image", "folder")


@register_reader("video-folder")
def read_video_folder(root: Path) -> Dataset:
    """root/<class>/*.avi|*.mp4, the UCF50/UCF101 layout."""
    return _read_class_folders(root, "video", "video-folder")


@register_reader("csv")
def read_csv(root: Path, *, images: str | Path | None = None) -> Dataset:
    """A CSV of filename[,label] plus an image folder (the Kaggle HAR layout)."""
    csv_path = _pick_csv(root) if root.is_dir() else root
    base = csv_path.parent
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv_path}: cannot read the CSV ({exc})") from None
    if not rows:
        raise DataError(f"{csv_path}: the CSV is empty; it needs a header row with a filename column")
    header = [h.strip().lower() for h in rows[0]]
    file_col = next((header.index(c) for c in FILENAME_COLUMNS if c in header), None)
    if file_col is None:
        raise DataError(
            f"{csv_path}: no filename column in header {rows[0]}; name one of {', '.join(FILENAME_COLUMNS)}"
        )
    label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)

    search_dirs = _image_dirs(base, csv_path, images)
    by_name: dict[str, Path] | None = None  # built lazily, only if some row needs a base-name lookup
    samples: list[Sample] = []
    missing: list[MissingFile] = []
    by_basename = 0
    for row_number, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        name = row[file_col].strip() if file_col < len(row) else ""
        label = row[label_col].strip() if label_col is not None and label_col < len(row) else None
        path = _resolve_direct(name, base, search_dirs)
        if path is None and name:
            if by_name is None:
                by_name = {p.name: p for d in search_dirs for p in d.rglob("*") if p.is_file()}
            path = by_name.get(_base_name(name))
            by_basename += path is not None
        if path is None:
            missing.append(MissingFile(row_number, name))
            continue
        samples.append(Sample(path, label or None, name=name))
    notes = [f"read {csv_path.name}; images looked up in {', '.join(str(d) for d in search_dirs)}"]
    if by_basename:
        message = (
            f"{by_basename} filenames in {csv_path.name} were resolved by base name inside the image folder"
        )
        log.info(message)
        notes.append(message)
    if label_col is None:
        notes.append("no label column: an unlabelled set, usable for prediction only")
    clips = sum(is_video_path(s.path) for s in samples)
    return Dataset(
        base, "csv", "video" if clips > len(samples) / 2 else "image", samples, missing=missing, notes=notes
    )


def _pick_csv(folder: Path) -> Path:
    found = sorted(folder.glob("*.csv"))
    if len(found) == 1:
        return found[0]
    for preferred in PREFERRED_CSV_NAMES:
        if (folder / preferred).is_file():
            return folder / preferred
    if not found:
        raise DataError(f"{folder}: no CSV file found; give the CSV file itself as DATA")
    names = ", ".join(f.name for f in found)
    raise DataError(f"{folder}: several CSV files ({names}); give the one to use as DATA")


def _image_dirs(base: Path, csv_path: Path, images: str | Path | None) -> list[Path]:
    """Where a CSV's images live: --images, else the folder its name points at, else the usual names."""
    if images is not None:
        folder = Path(images).expanduser()
        if not folder.is_dir():
            raise DataError(f"{folder}: the image folder given with --images does not exist")
        return [folder]
    # Kaggle HAR: Training_set.csv -> train/, Testing_set.csv -> test/ (both hold an Image_1.jpg).
    first_word = re.split(r"[_\-. ]", csv_path.stem.lower())[0]
    hinted = SPLIT_NAMES.get(first_word)
    if hinted and (base / hinted).is_dir():
        return [base / hinted]
    found = [base / n for n in IMAGE_FOLDER_NAMES if (base / n).is_dir()]
    return found or [base]


def _resolve_direct(name: str, base: Path, search_dirs: list[Path]) -> Path | None:
    if not name:
        return None
    candidate = Path(name)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for folder in (base, *search_dirs):
        if (folder / name).is_file():
            return folder / name
    return None


def _base_name(name: str) -> str:
    """The file name of a path written on any OS (C:\\Users\\...\\Image_1.jpg or /home/.../Image_1.jpg)."""
    return PureWindowsPath(name).name if "\\" in name or ":" in name else PurePosixPath(name).name


@register_reader("stanford40")
def read_stanford40(root: Path) -> Dataset:
    """Stanford 40 Actions: the official split from ImageSplits/, one person box per image from XML."""
    splits_dir, images_dir, xml_dir = root / "ImageSplits", root / "JPEGImages", root / "XMLAnnotations"
    actions_file = splits_dir / "actions.txt"
    if not actions_file.is_file():
        raise DataError(f"{actions_file}: missing; Stanford 40 lists its classes there")
    lines = actions_file.read_text(encoding="utf-8").split("\n")
    actions = [line.split()[0] for line in lines[1:] if line.strip()]
    samples: list[Sample] = []
    missing: list[MissingFile] = []
    no_box = 0
    for action in actions:
        for split in ("train", "test"):
            list_file = splits_dir / f"{action}_{split}.txt"
            if not list_file.is_file():
                continue
            names = [n.strip() for n in list_file.read_text(encoding="utf-8").split("\n") if n.strip()]
            for row, name in enumerate(names, start=1):
                path = images_dir / name
                if not path.is_file():
                    missing.append(MissingFile(row, f"{list_file.name}: {name}"))
                    continue
                box = read_person_box(xml_dir / f"{path.stem}.xml")
                no_box += box is None
                samples.append(Sample(path, action, box=box, split=split))
    notes = ["official Stanford 40 train/test split"]
    if no_box:
        notes.append(f"{no_box} images have no person box in XMLAnnotations/")
    return Dataset(root, "stanford40", "image", samples, missing=missing, notes=notes)


def read_person_box(xml_path: Path) -> Box | None:
    """The first bounding box in a Stanford 40 / PASCAL VOC annotation, or None when there is none."""
    if not xml_path.is_file():
        return None
    try:
        node = ET.parse(xml_path).getroot().find(".//bndbox")
    except ET.ParseError as exc:
        log.warning("%s: unreadable annotation (%s); image used without a box", xml_path, exc)
        return None
    if node is None:
        return None
    try:
        xmin, ymin, xmax, ymax = (float(node.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
    except ValueError:
        return None
    if not (xmax > xmin and ymax > ymin):
        return None
    return xmin, ymin, xmax, ymax
