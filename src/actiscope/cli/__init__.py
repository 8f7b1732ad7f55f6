"""The `actiscope` command: one module per verb, each handler a thin call into the library that prints
its result.

Every user mistake ends as one line on stderr and a non-zero exit status, never a traceback: argparse's
own errors exit 2 (with the closest valid option or choice), an ActiscopeError exits with its code.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from actiscope.cli import (
    compare,
    data,
    evaluate,
    explain,
    export,
    models,
    predict,
    serve,
    train,
    tune,
    user,
    weights,
)
from actiscope.cli.arguments import ArgumentParser
from actiscope.errors import ActiscopeError
from actiscope.files import DISK_FULL
from actiscope.version import __version__

log = logging.getLogger("actiscope")

# in --help order
VERBS = (data, models, weights, train, tune, predict, compare, evaluate, serve, user, explain, export)
INTERRUPTED = 130  # the shell's status for a process ended by SIGINT
BROKEN_PIPE = 141  # ... and by SIGPIPE
IO_ERROR = 74  # sysexits.h EX_IOERR: a write failed (a full disk)
# Without -v, no warning from any module but ours (Lightning's PossibleUserWarnings, deprecations inside
# torch and Lightning, ...): they are about the libraries, not about the user's run.
THIRD_PARTY_WARNINGS = r"(?!actiscope(\.|$))"
# ... and the third-party loggers that print tips and chatter: Lightning's rank-zero messages (the
# "litlogger" tip, "GPU available", "`Trainer.fit` stopped"), its MLflow logger ("Experiment ... not
# found. Creating it.") and MLflow's creation of a new store. Their errors still show.
THIRD_PARTY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.loggers.mlflow",
    "mlflow.store.db.utils",
    "alembic.runtime.migration",
)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="actiscope", description="Recognise human actions in images and clips.")
    parser.add_argument("--version", action="version", version=f"actiscope {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _log_to_stderr(verbose=args.verbose)
    handler: Callable[..., int] = args.handler
    try:
        with _third_parties(verbose=args.verbose):
            return handler(args)
    except ActiscopeError as exc:
        print(f"actiscope: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("actiscope: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # the reader went away (`actiscope models | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        print(f"actiscope: error: {disk_full(exc)}", file=sys.stderr)
        return IO_ERROR


def disk_full(exc: OSError) -> str:
    """A failed write in words: the folder, and what to do. Whatever was being written is not left half
    written (files.atomic_output), so freeing space and running again is safe."""
    path = Path(exc.filename) if exc.filename else None
    where = f"{path.parent} (writing {path.name})" if path else "the device actiscope was writing to"
    if exc.errno == errno.EFBIG:
        return f"file too large for the file size limit (`ulimit -f`) in {where}: raise the limit or choose another --out"
    return f"no space left in {where}: free some space there or choose another --out"


@contextlib.contextmanager
def _third_parties(*, verbose: bool) -> Iterator[None]:
    """Other libraries' warnings and tips hidden unless -v, for this call only (the filters and levels as
    they were afterwards: `main` may run many times in one process). A level set on a logger before its
    library is imported stays: the library fetches the same logger object."""
    quiet = [logging.getLogger(name) for name in THIRD_PARTY_LOGGERS]
    levels = [logger.level for logger in quiet]
    with warnings.catch_warnings():
        if not verbose:
            warnings.filterwarnings("ignore", module=THIRD_PARTY_WARNINGS)
            for logger in quiet:
                logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)


def _log_to_stderr(*, verbose: bool) -> None:
    """The library's messages go to the stderr of this call (Lightning keeps its own handler); a handler
    from an earlier call in the same process may hold a stream that is gone."""
    for stale in list(log.handlers):
        log.removeHandler(stale)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(stream)
    log.propagate = False  # a root handler another library installed would print every line twice
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
