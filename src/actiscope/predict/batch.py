"""`actiscope predict` on many files: what to predict (files, folders, CSVs, list files), their person
boxes (a boxes CSV), and the CSV of predictions, one row per file (or per window of a clip's timeline)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from actiscope.data.formats import read_csv
from actiscope.data.images import Box, is_image_path
from actiscope.data.video import VideoReadError, is_video_path
from actiscope.errors import ActiscopeError, MediaReadError
from actiscope.files import atomic_output
from actiscope.predict.predictor import Prediction, Predictor

LIST_SUFFIXES = (".txt", ".lst")
BOX_COLUMNS = ("path", "xmin", "ymin", "xmax", "ymax")
Row = dict[str, object]
# The `input` column, for a model trained on person crops: what each image was given as.
CROPPED, WHOLE = "person crop", "whole image (no box known)"


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # as given: the CSV's filename cell, or the path
    error: str | None = None  # known before decoding (a CSV row naming a missing file)


class Progress(Protocol):
    """What `predict_rows` reports to, one file at a time (a tqdm bar is one)."""

    def update(self, n: float = 1, /) -> object: ...


def collect_inputs(inputs: Sequence[str | Path], kind: str = "image") -> tuple[list[InputFile], list[Path]]:
    """Expand files, folders (recursively), CSVs with a filename column and list files into the files
    to predict; also return the files skipped in folders because they are not images (for a video
    model: clips) by extension."""
    wanted = is_video_path if kind == "video" else is_image_path

    files: list[InputFile] = []
    skipped: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if not path.exists():
            raise ActiscopeError(f"{path}: no such file or folder")
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                if wanted(found):
                    files.append(InputFile(found, str(found)))
                else:
                    skipped.append(found)
        elif path.suffix.lower() == ".csv":
            dataset = read_csv(path)
            files += [InputFile(s.path, s.name or str(s.path)) for s in dataset.samples]
            files += [
                InputFile(path.parent / m.filename, m.filename, "file not found") for m in dataset.missing
            ]
        elif path.suffix.lower() in LIST_SUFFIXES:
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    listed = Path(line.strip())
                    listed = listed if listed.is_absolute() else path.parent / listed
                    files.append(
                        InputFile(listed, line.strip(), None if listed.is_file() else "file not found")
                    )
        else:
            files.append(InputFile(path, str(path)))
    return files, skipped


def read_boxes(path: Path) -> dict[Path, Box]:
    """A boxes CSV (columns path,xmin,ymin,xmax,ymax; pixels of the image as stored) as {file: box}.
    A relative path is relative to the CSV's folder, as in a list file; files are matched resolved."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ActiscopeError(f"{path}: cannot read the boxes CSV ({exc})") from None
    missing = [c for c in BOX_COLUMNS if c not in columns]
    if missing:
        raise ActiscopeError(
            f"{path}: no {', '.join(missing)} column(s); a boxes CSV has the columns {','.join(BOX_COLUMNS)}"
        )
    boxes: dict[Path, Box] = {}
    for row, line in enumerate(lines, start=2):
        cells = {k.strip().lower(): (v or "").strip() for k, v in line.items() if k is not None}
        try:
            xmin, ymin, xmax, ymax = (float(cells[c]) for c in BOX_COLUMNS[1:])
        except ValueError:
            raise ActiscopeError(
                f"{path}:{row}: xmin, ymin, xmax and ymax must be numbers (pixels)"
            ) from None
        if not all(map(math.isfinite, (xmin, ymin, xmax, ymax))) or not (xmax > xmin and ymax > ymin):
            raise ActiscopeError(f"{path}:{row}: a box needs xmin < xmax and ymin < ymax")
        listed = Path(cells["path"]).expanduser()
        file = (listed if listed.is_absolute() else path.parent / listed).resolve()
        if file in boxes:
            raise ActiscopeError(f"{path}:{row}: {cells['path']} has a box already; give one box per image")
        boxes[file] = (xmin, ymin, xmax, ymax)
    if not boxes:
        raise ActiscopeError(f"{path}: no boxes in it")
    return boxes


def boxes_for(files: Sequence[InputFile], boxes: dict[Path, Box]) -> list[Box | None]:
    """Each input file's box from `read_boxes`, None where the CSV has none."""
    return [boxes.get(f.path.resolve()) for f in files]


def predict_rows(
    predictor: Predictor,
    files: Sequence[InputFile],
    *,
    top_k: int = 3,
    batch_size: int = 32,
    workers: int = 2,
    progress: Progress | None = None,
    boxes: Sequence[Box | None] | None = None,
) -> list[Row]:
    """One row per input file, in order: filename, label, confidence, the next top-k, error; for a
    model trained on person crops also `input`, whether the image was given as its crop (`boxes`: each
    file's person box, None where none is known) or whole."""
    rows: dict[int, Row] = {}
    todo = [i for i, f in enumerate(files) if f.error is None]
    for i, f in enumerate(files):
        if f.error is not None:
            rows[i] = {"filename": f.name, "error": f.error}
    paths = [files[i].path for i in todo]
    todo_boxes = [boxes[i] for i in todo] if boxes is not None else [None] * len(todo)
    results = predictor.predict_files(
        paths, top_k=top_k, batch_size=batch_size, workers=workers, boxes=todo_boxes
    )
    for i, box, (_, prediction, error) in zip(todo, todo_boxes, results, strict=True):
        row: Row = {"filename": files[i].name}
        if prediction is None:
            row["error"] = error
        else:
            row |= prediction_row(prediction)
            if predictor.crops_person:
                row["input"] = CROPPED if box is not None else WHOLE
        rows[i] = row
        if progress is not None:
            progress.update(1)
    return [rows[i] for i in range(len(files))]


def prediction_row(prediction: Prediction) -> Row:
    """label, confidence and the next classes of the top-k, as CSV columns."""
    row: Row = {"label": prediction.label, "confidence": round(prediction.confidence, 6)}
    for rank, (label, prob) in enumerate(prediction.top_k[1:], start=2):
        row |= {f"top{rank}_label": label, f"top{rank}_confidence": round(prob, 6)}
    return row


def timeline_rows(
    predictor: Predictor, files: Sequence[InputFile], *, window: float, stride: float, top_k: int = 3
) -> list[Row]:
    """One row per window of each clip (filename, start, end, label, ...); a bad clip gets an error row."""
    rows: list[Row] = []
    for f in files:
        try:
            if f.error is not None:
                raise VideoReadError(f.name, f.error)
            segments = predictor.timeline(f.path, window=window, stride=stride, top_k=top_k)
        except MediaReadError as exc:
            rows.append({"filename": f.name, "error": exc.reason})
            continue
        rows += [
            {"filename": f.name, "start": s.start, "end": s.end, **prediction_row(s.prediction)}
            for s in segments
        ]
    return rows


def write_predictions_csv(
    rows: Sequence[Row], path: Path, *, top_k: int, submission: bool = False, timeline: bool = False
) -> None:
    """The CSV is written to a temporary file and renamed: an interrupted run leaves no partial file.
    The `input` column is there when the rows have it (a model trained on person crops)."""
    columns = ["filename", *(("start", "end") if timeline else ()), "label"]
    if not submission:
        columns += ["confidence"]
        for rank in range(2, top_k + 1):
            columns += [f"top{rank}_label", f"top{rank}_confidence"]
        columns += [*(["input"] if any("input" in r for r in rows) else []), "error"]
    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
