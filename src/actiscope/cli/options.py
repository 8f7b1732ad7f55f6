"""The training options of `actiscope train` and `actiscope compare`: the bridge between argparse and
`actiscope.options.TrainOptions`, where every option is declared with its help text.

Only what the user gives (on the command line, or in a `--config` file) is fixed; the recipe that fits
it fills the rest, as for the Python API (`actiscope.api.train_options`, which resolves `--weights auto`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from actiscope.options import TrainOptions, add_arguments, given_options


def add_train_options(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """`--config FILE` and one `--flag` per training option (`skip` left out), with its help and default."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE.yaml",
        help="options from this file (a run's config.yaml, or `--print-config`'s output); the options given on "
        "the command line override it",
    )
    add_arguments(parser, skip)


def train_options(args: argparse.Namespace, data: str | None) -> tuple[TrainOptions, list[str]]:
    """The options that the command line, the `--config` file and the recipe give (in that order of
    precedence), and the lines that say what was chosen. DATA may come from the file."""
    from actiscope.api import train_options as resolve

    return resolve(data, config=args.config, **given_options(args))
