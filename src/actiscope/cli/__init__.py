"""The `actiscope` command: one module per verb, each handler a thin call into the library that prints
its result.

Every user mistake ends as one line on stderr and a non-zero exit status, never a traceback: argparse's
own errors exit 2 (with the closest valid option or choice), an ActiscopeError exits with its code.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence

from actiscope.cli import compare, data, evaluate, explain, export, models, predict, serve, train, weights
from actiscope.cli.arguments import ArgumentParser
from actiscope.errors import ActiscopeError
from actiscope.version import __version__

log = logging.getLogger("actiscope")

VERBS = (data, models, weights, train, predict, compare, evaluate, serve, explain, export)  # in --help order
INTERRUPTED = 130  # the shell's status for a process ended by SIGINT
BROKEN_PIPE = 141  # ... and by SIGPIPE


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
