"""`actiscope evaluate`: metrics, plots and report.md for a model on a labelled split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser, add_dataset_format, add_inference_args, add_model_arg


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    evaluate = sub.add_parser("evaluate", help="metrics, plots and report.md on a test split or dataset")
    add_model_arg(evaluate)
    evaluate.add_argument(
        "data", type=Path, nargs="?", metavar="DATA", help="labelled dataset (default: the run's split.json)"
    )
    evaluate.add_argument("--split", default="test", help="which split of the run or dataset (default: test)")
    evaluate.add_argument("--out", type=Path, help="folder for the report (default: RUN/eval)")
    evaluate.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    add_dataset_format(evaluate, help="dataset layout when not detected")
    add_inference_args(evaluate)
    evaluate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from actiscope.api import evaluate
    from actiscope.cli.progress import Progress

    with Progress("evaluate", "file") as progress:
        result = evaluate(
            args.model,
            args.data,
            split=args.split,
            out=args.out,
            tta=args.tta,
            backend=args.backend,
            format=args.format,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=progress,
        )
    m = result.metrics
    tta = ", flip TTA" if m["tta"] else ""
    print(f"{m['images']} images of {m['data']} ({m['backend']} backend{tta})")
    print(
        f"accuracy {_show(m['accuracy'])}  balanced accuracy {_show(m['balanced_accuracy'])}  "
        f"macro-F1 {_show(m['f1']['macro'])}  weighted-F1 {_show(m['f1']['weighted'])}"
    )
    topk = "  ".join(f"top-{k} {_show(v)}" for k, v in m["top_k_accuracy"].items())
    print(
        f"{topk}  kappa {_show(m['cohen_kappa'])}  log loss {_show(m['log_loss'])}  "
        f"ECE {_show(m['expected_calibration_error'])}".strip()
    )
    for note in m["undefined"]:
        print(f"  undefined: {note}")
    if m["unreadable"]:
        print(f"{m['unreadable']} unreadable image(s) not evaluated, listed in metrics.json", file=sys.stderr)
        for u in m["unreadable_files"][:5]:
            print(f"  unreadable: {u['path']}: {u['error']}", file=sys.stderr)
    print(f"report: {result.report}")
    return 0


def _show(value: float | None) -> str:
    """A metric that can be undefined (one class only, say) is printed as such."""
    return "undefined" if value is None else f"{value:.4f}"
