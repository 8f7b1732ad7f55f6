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

    from actiscope.api import train
    from actiscope.cli.options import with_tracking_uri
    from actiscope.engine.fit import resume_config, run_name
    from actiscope.run import RunDir

    chosen: list[str] = []
    if args.resume:
        options = resume_config(
            args.resume, epochs=args.epochs, time_limit=args.time_limit, logger=args.logger
        )
        options = with_tracking_uri(options, args.mlflow_uri)
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
    run = train(options, resume=args.resume, announce=chosen)
    print(f"run: {run.path}")
    print(f"{_outcome(run.metrics, run.epochs, run.path)}; model package: {RunDir(run.path).model}")
    return 0


def _outcome(m: dict[str, float], epochs: int, run: Path) -> str:
    """The run's result in words: its test metrics, or that it had no test split to measure them on."""
    if "test_acc" in m:
        return f"test accuracy {m['test_acc']:.4f}, macro-F1 {m['test_f1']:.4f} (best epoch {m.get('best_epoch')} of {epochs})"
    val = m.get("best_val_acc")
    best = (
        f"best validation accuracy {val:.4f} at epoch {m.get('best_epoch')} of {epochs}"
        if val is not None
        else "no validation split either"
    )
    return f"no test split, so no test accuracy: {best} (`actiscope evaluate {run} DATA` measures it on other labelled data)"
