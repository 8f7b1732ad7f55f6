"""The training options of `actiscope train` and `actiscope compare`: the bridge between argparse and
`actiscope.options.TrainOptions`, where every option is declared with its help text.

Only what the user gives (on the command line, or in a `--config` file) is fixed; the recipe that fits
it fills the rest (`TrainOptions.recipe`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from actiscope.cli.arguments import UsageError
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


def train_options(
    args: argparse.Namespace, data: str | None, *, skip: tuple[str, ...] = ()
) -> tuple[TrainOptions, list[str]]:
    """The options that the file, the command line and the recipe give (in that order of precedence:
    command line, file, recipe), and the lines that say what was chosen: the Python API's resolution
    (`actiscope.api.resolve_options`, where `--weights auto` is resolved), with the tracking URI of the
    edge. DATA may come from the file."""
    from actiscope.api import resolve_options

    if data is None and args.config is None:
        raise UsageError("give DATA (a dataset folder or CSV), or a --config file that names one")
    given = given_options(args, skip)
    options, lines = resolve_options(data, args.config, given, skip)
    return with_tracking_uri(options, given.get("mlflow_uri")), lines


def with_tracking_uri(options: TrainOptions, given: str | None) -> TrainOptions:
    """--logger mlflow: the tracking URI given, else $MLFLOW_TRACKING_URI (read here, at the edge), else
    the one the options hold (None: the run's own store)."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    return options.override(mlflow_uri=uri) if uri and "mlflow" in options.output.logger else options
