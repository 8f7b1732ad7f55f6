"""`actiscope train`: train one model into a run directory (or resume one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser, UsageError
from actiscope.cli.options import add_train_options, train_config


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    train = sub.add_parser("train", help="train a model; writes a run directory with a deployable package")
    train.add_argument("data", type=Path, nargs="?", metavar="DATA", help="dataset folder or CSV file")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this directory")
    add_train_options(train)
    train.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from dataclasses import replace

    from actiscope.engine.fit import resume_config, run_name
    from actiscope.run import RunDir
    from actiscope.workflows import train

    chosen: list[str] = []
    if args.resume:
        config = resume_config(args.resume, epochs=args.epochs, time_limit=args.time_limit)
    elif args.data is None:
        raise UsageError("train needs DATA (a dataset folder or CSV), or --resume RUN")
    else:
        config, chosen = train_config(args, str(args.data))
        if config.devices * config.num_nodes > 1 and not config.name:
            config = replace(config, name=run_name(config))
            sys.argv += ["--name", config.name]  # Lightning starts the other ranks with this command line
    result = train(config, resume=args.resume, announce=chosen)
    m = result.metrics
    print(f"run: {result.run_dir}")
    print(
        f"test accuracy {m.get('test_acc', float('nan')):.4f}, macro-F1 {m.get('test_f1', float('nan')):.4f} "
        f"(best epoch {m.get('best_epoch')} of {result.epochs}); model package: {RunDir(result.run_dir).model}"
    )
    return 0
