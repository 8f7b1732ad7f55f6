"""`actiscope serve`: the web app and JSON API under gunicorn, with the runs dashboard."""

from __future__ import annotations

import argparse
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser, add_backend_arg
from actiscope.errors import ActiscopeError
from actiscope.web.admission import DEFAULT_CAPACITY, Capacity


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="the web app and JSON API (gunicorn), with the runs dashboard")
    serve.add_argument("--runs", type=Path, default=Path("runs"), help="the runs the dashboard shows")
    serve.add_argument("--model", type=Path, help="model package or run to serve (default: the newest run)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="any address but a loopback one needs a login for changes (`actiscope user add NAME`)",
    )
    serve.add_argument(
        "--open",
        action="store_true",
        help="on such an address, let anyone read the pages and predict (changes still need a login)",
    )
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    serve.add_argument("--workers", type=int, default=2, help="worker processes (each loads the model once)")
    add_backend_arg(serve)
    default = DEFAULT_CAPACITY
    serve.add_argument(
        "--slots",
        type=int,
        default=default.slots,
        help="predictions at once per worker (default %(default)s)",
    )
    serve.add_argument(
        "--queue",
        type=int,
        default=default.queue,
        help="predictions that may wait per worker; more are answered 503 + Retry-After (default %(default)s)",
    )
    serve.add_argument(
        "--queue-wait",
        type=float,
        default=default.wait_s,
        metavar="SECONDS",
        help="the longest wait in that queue before a 503 + Retry-After (default %(default)s)",
    )
    serve.add_argument(
        "--data-dir", type=Path, help="database, uploads and secret key (default: $ACTISCOPE_DATA_DIR)"
    )
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from actiscope.web.serve import prepare_server

    server = prepare_server(
        runs=args.runs,
        model=args.model,
        host=args.host,
        port=args.port,
        workers=args.workers,
        capacity=capacity(args),
        data_dir=args.data_dir,
        access_log=args.verbose,
        open_read=args.open,
        backend=args.backend,
    )
    print(
        f"actiscope serving on {server.url}  (runs: {server.runs_dir}, data: {server.data_dir}, "
        f"{server.workers} workers); Ctrl-C stops",
        flush=True,
    )
    server.exec()


def capacity(args: argparse.Namespace) -> Capacity:
    try:
        return Capacity(slots=args.slots, queue=args.queue, wait_s=args.queue_wait)
    except ValueError as exc:
        raise ActiscopeError(f"--slots, --queue, --queue-wait: {exc}") from None
