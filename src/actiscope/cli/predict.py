"""`actiscope predict`: predict images or clips (files, folders, CSV or list files) to a table or a CSV."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from actiscope.cli.arguments import ArgumentParser, UsageError, add_inference_args, add_model_arg

if TYPE_CHECKING:
    from actiscope.data.images import Box
    from actiscope.predict import InputFile, Predictor

log = logging.getLogger("actiscope")

Row = dict[str, object]  # one CSV row: filename, [start, end,] label, confidence, topN_label, ..., error
FAILED_SHOWN = 10
MAX_EXIT_STATUS = (
    125  # the exit status counts the files that failed; above 125 the shell has its own meanings
)


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    predict = sub.add_parser("predict", help="predict images or clips: files, folders, CSV or list files")
    add_model_arg(predict)
    predict.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image (or clip) files, folders, a CSV with a filename column, or a .txt list",
    )
    predict.add_argument(
        "--timeline", action="store_true", help="video: slide a window over each clip, one row per window"
    )
    predict.add_argument("--window", type=float, default=2.0, help="--timeline window, seconds")
    predict.add_argument("--stride", type=float, default=1.0, help="--timeline step, seconds")
    predict.add_argument("--out", type=Path, help="write a CSV here (default: print a table)")
    predict.add_argument(
        "--boxes",
        type=Path,
        metavar="CSV",
        help="person boxes (columns path,xmin,ymin,xmax,ymax; paths relative to the CSV) for a model "
        "trained on person crops: each image is cropped as in training",
    )
    predict.add_argument("--top-k", type=int, default=3, help="classes per prediction, best first")
    add_inference_args(predict)
    predict.add_argument(
        "--format",
        choices=("full", "submission"),
        default="full",
        help="submission: only filename,label (a Kaggle submission)",
    )
    predict.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from actiscope.predict import Predictor, boxes_for, write_predictions_csv

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {args.top_k}")
    boxes_by_file = _read_boxes(args)  # before the model loads: a mistake there is found at once
    predictor = Predictor.load(args.model, backend=args.backend)
    what = _plural(predictor.meta.kind)
    files = _inputs(args, predictor)
    boxes = None if boxes_by_file is None else boxes_for(files, boxes_by_file)
    start = time.perf_counter()
    rows = _predict(args, predictor, files, boxes)
    seconds = time.perf_counter() - start

    if args.out:
        submission = args.format == "submission"
        write_predictions_csv(rows, args.out, top_k=args.top_k, submission=submission, timeline=args.timeline)
        print(f"wrote {args.out}")
    else:
        _print_table(rows, args.top_k)
    failed = [r for r in rows if r.get("error")]
    done = f"{len(files) - len(failed)} {what}"
    if args.timeline:
        done += f", {len(rows) - len(failed)} windows"
    print(
        f"{done} predicted, {len(failed)} failed, {len(files) / seconds:.1f} {what}/s "
        f"({predictor.backend} backend)"
    )
    for row in failed[:FAILED_SHOWN]:
        print(f"  failed: {row['filename']}: {row['error']}", file=sys.stderr)
    if predictor.crops_person:
        print(_crop_summary(rows, predictor, args.boxes))
    return min(len(failed), MAX_EXIT_STATUS)


def _read_boxes(args: argparse.Namespace) -> dict[Path, Box] | None:
    """--boxes read, for a model whose model.json records a person crop (None without --boxes)."""
    from actiscope.package import read_meta
    from actiscope.predict import read_boxes

    if args.boxes is None:
        return None
    meta = read_meta(args.model)
    if meta.person_crop is None or meta.kind != "image":
        raise UsageError(
            f"--boxes: {args.model} was trained on whole images (its model.json records no person crop); "
            "drop --boxes"
        )
    return read_boxes(args.boxes)


def _crop_summary(rows: list[Row], predictor: Predictor, boxes: Path | None) -> str:
    """The line that says which images were given as the person crop the model expects."""
    from actiscope.predict.batch import CROPPED, WHOLE

    cropped = sum(r.get("input") == CROPPED for r in rows)
    whole = sum(r.get("input") == WHOLE for r in rows)
    margin = f"margin {predictor.meta.person_crop:g}"
    if boxes is None:
        return (
            f"this model was trained on person crops ({margin}) and no --boxes were given: "
            f"the whole image was used for all {whole} images"
        )
    line = f"person crops ({margin}): {cropped} cropped to their box in {boxes}"
    return line + (f"; {whole} without a box there: the whole image was used" if whole else "")


def _plural(kind: str) -> str:
    """What a model of this kind predicts, for messages."""
    return "clips" if kind == "video" else "images"


def _inputs(args: argparse.Namespace, predictor: Predictor) -> list[InputFile]:
    """The files to predict, after the checks that need the model's kind. (Candidates for the library's
    batch-input code, which this change may not edit.)"""
    from actiscope.predict import collect_inputs

    kind = predictor.meta.kind
    what = _plural(kind)
    if args.timeline and kind != "video":
        raise UsageError(f"--timeline needs a video model; {args.model} is an image model")
    files, skipped = collect_inputs(args.inputs, kind)
    if not files:
        raise UsageError(f"no {what} to predict in " + ", ".join(map(str, args.inputs)))
    if skipped:
        log.info("skipped %d files that are not %s by extension (e.g. %s)", len(skipped), what, skipped[0])
    return files


def _predict(
    args: argparse.Namespace, predictor: Predictor, files: list[InputFile], boxes: list[Box | None] | None
) -> list[Row]:
    from actiscope.cli.progress import Progress
    from actiscope.predict import predict_rows, timeline_rows

    if args.timeline:
        return timeline_rows(predictor, files, window=args.window, stride=args.stride, top_k=args.top_k)
    unit = _plural(predictor.meta.kind)[:-1]
    with Progress("predict", unit, len(files)) as bar:
        return predict_rows(
            predictor,
            files,
            top_k=args.top_k,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=bar,
            boxes=boxes,
        )


def _print_table(rows: list[Row], top_k: int) -> None:
    """One line per row: the file (its last 60 characters), the window for a timeline, the top-k."""
    width = min(60, max(len(str(r["filename"])) for r in rows))
    for row in rows:
        name = str(row["filename"])[-width:]
        if "start" in row:
            name = f"{name}  {row['start']:7.2f}-{row['end']:7.2f} s"
        if row.get("error"):
            print(f"{name:<{width}}  error: {row['error']}")
            continue
        ranked = [f"{row['label']} {row['confidence']:.3f}"]
        for k in range(2, top_k + 1):
            if f"top{k}_label" in row:
                ranked.append(f"{row[f'top{k}_label']} {row[f'top{k}_confidence']:.3f}")
        print(f"{name:<{width}}  " + "  ".join(ranked))
