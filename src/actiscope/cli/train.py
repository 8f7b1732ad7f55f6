"""`actiscope train`: train one model into a run directory (or resume one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser
from actiscope.cli.options import add_train_options, train_options


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    train = sub.add_parser("train", help="train a model; writes a run directory with a deployable package")
    train.add_argument(
        "data", type=Path, nargs="?", metavar="DATA", help="dataset folder or CSV file (or from --config)"
    )
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this directory")
    train.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved options (recipe included) as YAML, the form --config takes, and stop",
    )
    add_train_options(train)
    train.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from actiscope import api
    from actiscope.engine.fit import run_name
    from actiscope.run import RunDir

    if args.resume:
        options, chosen = api.train_options(
            resume=args.resume, epochs=args.epochs, time_limit=args.time_limit
        )
    else:
        options, chosen = train_options(args, None if args.data is None else str(args.data))
        if options.trainer.devices * options.trainer.num_nodes > 1 and not options.output.name:
            options = options.override(name=run_name(options))
            sys.argv += ["--name", str(options.output.name)]  # Lightning starts the other ranks with it
    if args.print_config:
        for line in chosen:
            print(f"# {line}")
        print(options.to_yaml(), end="")
        return 0
    result = api.train(options, resume=args.resume, announce=chosen)
    m = result.metrics
    print(f"run: {result.path}")
    print(
        f"test accuracy {m.get('test_acc', float('nan')):.4f}, macro-F1 {m.get('test_f1', float('nan')):.4f} "
        f"(best epoch {m.get('best_epoch')} of {result.epochs}); model package: {RunDir(result.path).model}"
    )
    return 0
