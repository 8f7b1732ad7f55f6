"""`actiscope explain`: a Grad-CAM heat map of where the model looked."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser, LibraryChoices, add_library_choice, add_model_arg


def _methods() -> Sequence[str]:
    from actiscope.explain import METHODS

    return METHODS


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    explain = sub.add_parser("explain", help="Grad-CAM heat map: where the model looked")
    add_model_arg(explain)
    explain.add_argument("image", type=Path, metavar="IMAGE", help="the image to explain")
    explain.add_argument("--out", type=Path, help="overlay PNG (default: IMAGE_STEM.gradcam.png here)")
    explain.add_argument(
        "--class", dest="class_name", metavar="NAME", help="explain this class (default: top-1)"
    )
    add_library_choice(
        explain, "--method", choices=LibraryChoices(_methods), default="gradcam", help="attribution method"
    )
    explain.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from actiscope.explain import explain

    out = args.out or Path(f"{args.image.stem}.{args.method.replace('+', 'p')}.png")
    result = explain(args.model, args.image, out=out, class_name=args.class_name, method=args.method)
    for rank, (label, prob) in enumerate(result.top, start=1):
        print(f"{rank}. {label} {prob:.3f}")
    print(f"{args.method} for {result.target!r}: {out}")
    return 0
