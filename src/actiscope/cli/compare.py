"""`actiscope compare`: train several architectures on one split and rank them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser, LibraryChoices, add_library_choice
from actiscope.cli.options import add_train_options
from actiscope.options import given_options

OWN = ("model", "name", "out")  # compare names and places each architecture's run itself


def _select() -> Sequence[str]:
    from actiscope.evaluate.leaderboard import SELECT

    return SELECT


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    compare = sub.add_parser("compare", help="train several architectures on one split and rank them")
    compare.add_argument("data", type=Path, metavar="DATA", help="dataset folder or CSV file")
    compare.add_argument(
        "--models", required=True, help="comma-separated registry names (see `actiscope models`)"
    )
    compare.add_argument("--out", type=Path, default=Path("compare"), help="folder for runs and leaderboard")
    add_library_choice(
        compare, "--select", choices=LibraryChoices(_select), default="accuracy", help="what ranks the models"
    )
    compare.add_argument(
        "--ensemble",
        type=int,
        default=0,
        metavar="K",
        help="also average the K best models into one package (OUT/ensemble/model), scored and timed "
        "like the others; its members must share one input size",
    )
    add_train_options(compare, skip=OWN)
    compare.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from actiscope import api
    from actiscope.run import CompareDir

    result = api.compare(
        args.data,
        args.models.split(","),
        out=args.out,
        select=args.select,
        ensemble=args.ensemble,
        config=args.config,
        **given_options(args, OWN),
    )
    out = CompareDir(result.out)
    print(out.leaderboard_md.read_text(encoding="utf-8"))
    if result.best is None:
        print("actiscope: error: every architecture failed; see the status column above", file=sys.stderr)
        return 1
    print(f"best by {args.select}: {result.best.model}; its package: {out.best}")
    blend = result.ensemble
    if blend is not None and blend.run:
        print(
            f"{blend.model}: {args.select} {getattr(blend, args.select):.4f}, {blend.infer_ms} ms/image "
            f"({blend.backend}); its package: {out.ensemble.model}"
        )
    failed = [r for r in result.rows if r.status != "done"]
    return 1 if failed else 0
