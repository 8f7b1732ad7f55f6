"""`actiscope export`: a model package to ONNX (optionally int8) or TorchScript."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser, LibraryChoices, add_library_choice, add_model_arg


def _formats() -> Sequence[str]:
    from actiscope.export import FORMATS

    return FORMATS


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    export = sub.add_parser("export", help="export a model package to ONNX or TorchScript")
    add_model_arg(export)
    add_library_choice(
        export, "--format", choices=LibraryChoices(_formats), required=True, help="the file format to write"
    )
    export.add_argument("--out", type=Path, help="default: into the package, where --backend onnx finds it")
    export.add_argument(
        "--quantize", choices=("int8",), help="ONNX Runtime static int8, calibrated on training images"
    )
    export.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from actiscope import api

    result = api.export(args.model, args.format, out=args.out, quantize=args.quantize)
    print(f"wrote {result.path}")
    if result.max_prob_diff is not None:
        print(
            f"largest probability difference, PyTorch vs {args.format}: {result.max_prob_diff:.2e} "
            f"on {result.check_source}"
        )
    if result.int8:
        q = result.int8
        print(
            f"{result.int8_line()}; {q['fp32_images_per_s']:.1f} -> {q['int8_images_per_s']:.1f} {result.inputs}/s"
        )
    return 0
