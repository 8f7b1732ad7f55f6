"""`actiscope tune`: a hyperparameter search (Optuna) around the recipe, on one split, scored on validation."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser
from actiscope.cli.options import add_train_options, train_options
from actiscope.options import given_options

log = logging.getLogger("actiscope")

SKIP = ("name", "out", "export")  # the search names its trials' runs; trials export nothing
DEFAULT_TRIALS = 20  # without --time-limit


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    tune = sub.add_parser(
        "tune",
        help="search hyperparameters (Optuna): trials scored on validation, best.yaml for `train --config`",
        description="Train trials that vary the learning rate, weight decay, label smoothing, MixUp/CutMix, "
        "augmentation and image size (with --weights also the backbone learning-rate multiplier and head "
        "epochs) around the recipe, on one split, scored on its validation images. Options given on the "
        "command line are not searched (a --config file gives starting values). A rerun with the same options "
        "continues the search.",
    )
    tune.add_argument(
        "data", type=Path, nargs="?", metavar="DATA", help="dataset folder or CSV file (or from --config)"
    )
    tune.add_argument("--out", type=Path, default=Path("tune"), help="folder of the search (default: tune)")
    tune.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help=f"trials in all, those of an earlier run of this search included (default: {DEFAULT_TRIALS}, or "
        "as many as --time-limit allows)",
    )
    tune.add_argument(
        "--time-limit",
        dest="search_minutes",
        type=float,
        metavar="MINUTES",
        help="minutes for the whole search: no trial starts without half its budget left (default: no limit)",
    )
    tune.add_argument(
        "--per-trial",
        dest="time_limit",  # each trial's --time-limit: a recipe then leaves the epochs to the clock
        type=float,
        metavar="MINUTES",
        help="minutes per trial (default: its epochs decide)",
    )
    add_train_options(tune, skip=(*SKIP, "time_limit"))
    tune.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from actiscope.run import TuneDir
    from actiscope.tune import tune

    if not args.verbose:  # Optuna's own lines (study created, trial finished) repeat what the search logs
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    base, chosen = train_options(args, None if args.data is None else str(args.data), skip=SKIP)
    for line in chosen:
        log.info(line)
    trials = args.trials if args.trials is not None or args.search_minutes else DEFAULT_TRIALS
    fixed = set(given_options(args, SKIP))
    result = tune(base, out=args.out, trials=trials, time_limit=args.search_minutes, fixed=fixed)
    out = TuneDir(result.out)
    print(out.leaderboard_md.read_text(encoding="utf-8"))
    if result.best is None:
        print("actiscope: error: no trial finished; see the state column above", file=sys.stderr)
        return 1
    count = f"{result.trials} trial{'s' if result.trials != 1 else ''}"
    print(
        f"best: trial {result.best.number}, validation accuracy {result.best.value:.4f} ({count}, "
        f"{result.pruned} pruned, {result.ran} run now)"
    )
    if result.test is not None:
        print(
            f"test split (seen once, by the best trial, after the search): accuracy {result.test['accuracy']:.4f}, "
            f"macro-F1 {result.test['macro_f1']:.4f}"
        )
    print(f"train it again: actiscope train --config {out.best_config}; its package: {out.best.model}")
    return 0
