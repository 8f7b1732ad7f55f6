"""The training options of `actiscope train` and `actiscope compare`: the bridge between argparse and
`actiscope.options.TrainOptions`, where every option is declared with its help text.

Only what the user gives (on the command line, or in a `--config` file) is fixed; the recipe that fits
it fills the rest (`TrainOptions.recipe`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from actiscope.cli.arguments import UsageError
from actiscope.options import ModelOptions, TrainOptions, add_arguments, given_options


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
    command line, file, recipe), and the lines that say what was chosen. DATA may come from the file."""
    given: dict[str, Any] = {}
    if args.config is not None:
        from_file = TrainOptions.from_yaml(args.config).flat()
        given = {k: v for k, v in from_file.items() if k not in skip}
    given |= given_options(args, skip)
    data = data if data is not None else given.get("data")
    given.pop("data", None)
    if data is None:
        raise UsageError("give DATA (a dataset folder or CSV), or a --config file that names one")
    lines = []
    if given.get("weights") == "auto":
        from actiscope.models.weights import resolve_auto

        architecture = given.get("model", ModelOptions.architecture)
        given["weights"], why = resolve_auto(architecture)
        if why:
            lines.append(f"training from scratch: {why}")
    options, recipe = TrainOptions.recipe(str(data), scratch_recipe=bool(lines), **given)
    return with_tracking_uri(options, given.get("mlflow_uri")), [*lines, *([recipe] if recipe else [])]


def with_tracking_uri(options: TrainOptions, given: str | None) -> TrainOptions:
    """--logger mlflow: the tracking URI given, else $MLFLOW_TRACKING_URI (read here, at the edge), else
    the one the options hold (None: the run's own store)."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    return options.override(mlflow_uri=uri) if uri and "mlflow" in options.output.logger else options
