"""`actiscope predict`: predict images or clips (files, folders, CSV or list files) to a table or a CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from actiscope.cli.arguments import ArgumentParser, add_inference_args, add_model_arg

if TYPE_CHECKING:
    from actiscope.predict.batch import Row

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
    from contextlib import ExitStack

    from actiscope.api import predict, show
    from actiscope.cli.progress import Progress

    with ExitStack() as bars:

        def bar(total: int) -> Progress:
            return bars.enter_context(Progress("predict", "file", total))

        rows = predict(
            args.model,
            args.inputs,
            top_k=args.top_k,
            backend=args.backend,
            batch_size=args.batch_size,
            workers=args.workers,
            timeline=args.timeline,
            window=args.window,
            stride=args.stride,
            boxes=args.boxes,
            progress=bar,
        )
    if args.out:
        rows.to_csv(args.out, submission=args.format == "submission")
        print(f"wrote {args.out}")
    else:
        _print_table(rows, args.top_k)
    what = show.plural(rows.kind)
    failed = rows.failed
    done = f"{rows.files - len(failed)} {what}"
    if args.timeline:
        done += f", {len(rows) - len(failed)} windows"
    print(
        f"{done} predicted, {len(failed)} failed, {rows.files / max(rows.seconds, 1e-9):.1f} {what}/s "
        f"({rows.backend} backend)"
    )
    for row in failed[:FAILED_SHOWN]:
        print(f"  failed: {row['filename']}: {row['error']}", file=sys.stderr)
    if rows.crop_note:
        print(rows.crop_note)
    return min(len(failed), MAX_EXIT_STATUS)


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
