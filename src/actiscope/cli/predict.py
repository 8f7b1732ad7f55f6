"""`actiscope predict`: predict images or clips (files, folders, CSV or list files) to a table or a CSV."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from actiscope.cli.arguments import ArgumentParser, add_inference_args, add_model_arg

if TYPE_CHECKING:
    from actiscope.predict import Progress

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
    predict.add_argument("--top-k", type=int, default=3)
    add_inference_args(predict)
    predict.add_argument(
        "--format",
        choices=("full", "submission"),
        default="full",
        help="submission: only filename,label (a Kaggle submission)",
    )
    predict.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from actiscope import api

    predictor = api.Predictor.load(args.model, backend=args.backend)
    what = _plural(predictor.meta.kind)
    with contextlib.ExitStack() as bars:

        def progress(total: int) -> Progress:
            return bars.enter_context(
                tqdm(total=total, unit=what[:-1], disable=not sys.stderr.isatty(), file=sys.stderr)
            )

        rows = api.predict(
            predictor,
            args.inputs,
            top_k=args.top_k,
            batch_size=args.batch_size,
            workers=args.workers,
            timeline=args.timeline,
            window=args.window,
            stride=args.stride,
            progress=progress,
        )

    if args.out:
        rows.to_csv(args.out, submission=args.format == "submission")
        print(f"wrote {args.out}")
    else:
        _print_table(rows, args.top_k)
    failed = rows.failed
    done = f"{rows.files - len(failed)} {what}"
    if args.timeline:
        done += f", {len(rows) - len(failed)} windows"
    print(
        f"{done} predicted, {len(failed)} failed, {rows.files / rows.seconds:.1f} {what}/s "
        f"({predictor.backend} backend)"
    )
    for row in failed[:FAILED_SHOWN]:
        print(f"  failed: {row['filename']}: {row['error']}", file=sys.stderr)
    return min(len(failed), MAX_EXIT_STATUS)


def _plural(kind: str) -> str:
    """What a model of this kind predicts, for messages."""
    return "clips" if kind == "video" else "images"


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
