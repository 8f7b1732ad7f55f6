"""Start the web app: check what it needs, apply migrations, then hand the process to gunicorn.

This is the edge between processes: gunicorn's workers are new interpreters that learn the runs, the
model and the data directory from the environment, which the web settings read. So `prepare_server`
writes those variables; nothing else in the library does.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from django.conf import settings

from actiscope.errors import ActiscopeError
from actiscope.package import package_dir
from actiscope.web.admission import DEFAULT_CAPACITY, Capacity
from actiscope.web.setup import open_database, prepare_environment
from actiscope.web.users import has_users

log = logging.getLogger(__name__)

WSGI_APPLICATION = "actiscope.web.wsgi:application"
REQUEST_TIMEOUT_S = 120  # a worker silent for this long is killed and replaced (gthread: its main loop)
GRACEFUL_TIMEOUT_S = 30  # SIGTERM: requests in flight get this long to finish (a queued one waits 10 s)
BACKLOG = 256  # connections the kernel holds for the workers; beyond it a client is refused at once


class ServeError(ActiscopeError):
    """The server cannot start as asked: no workers, a busy port, an unusable database."""


@dataclass(frozen=True)
class Server:
    """A server ready to start: the port was free and the database migrated."""

    host: str
    port: int
    workers: int
    runs_dir: Path  # as the web settings resolved them
    data_dir: Path
    access_log: bool = False
    capacity: Capacity = DEFAULT_CAPACITY  # per worker: predictions at once and waiting (admission.py)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def command(self) -> list[str]:
        """The gunicorn command line, run by this interpreter. Threaded workers (gthread): a request
        waiting for a prediction slot holds a thread, not the worker, so the pages, the API's reads and
        the quick 503s of a full queue are answered meanwhile. gunicorn's default of 1,000 connections
        per worker stays: a keep-alive client holds its connection, so a cap near the thread count
        left the clients beyond it waiting in the backlog until others left (30 s in bench_serve.py's
        overload), while requests on accepted connections wait only for a thread, which the quick
        refusals free."""
        capacity = self.capacity
        flags = {
            "--bind": f"{self.host}:{self.port}",
            "--workers": str(self.workers),
            "--worker-class": "gthread",
            "--threads": str(capacity.threads),
            "--backlog": str(BACKLOG),
            "--timeout": str(REQUEST_TIMEOUT_S),
            "--graceful-timeout": str(GRACEFUL_TIMEOUT_S),
            "--access-logfile": "-" if self.access_log else "/dev/null",
        }
        environment = [("--env", f"{name}={value}") for name, value in capacity.environ().items()]
        return [
            sys.executable,
            "-m",
            "gunicorn",
            WSGI_APPLICATION,
            *itertools.chain.from_iterable(flags.items()),
            *itertools.chain.from_iterable(environment),
        ]

    def exec(self) -> NoReturn:
        """Replace this process by gunicorn: Ctrl-C and signals then reach the server directly."""
        os.execv(sys.executable, self.command())


def prepare_server(
    *,
    runs: Path,
    model: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    data_dir: Path | None = None,
    access_log: bool = False,
    open_read: bool = False,
    capacity: Capacity = DEFAULT_CAPACITY,
    backend: str = "auto",
) -> Server:
    """Check the model, the port and the database now, so that a mistake is one line here rather than a
    503 or a crashed worker later; then apply the migrations."""
    if model is not None:
        package_dir(model)  # raises for a path that holds no package
    if workers < 1:
        raise ServeError(f"--workers must be at least 1, got {workers}")
    _check_port(host, port)
    if model is not None and backend != "auto":
        _check_backend(model, backend)
    _export_environment(runs=runs, model=model, data_dir=data_dir, workers=workers)
    if backend != "auto":
        os.environ["ACTISCOPE_BACKEND"] = backend
    if not is_loopback(host):
        os.environ["ACTISCOPE_EXPOSED"] = "1"  # a user's own 1 is kept: a loopback host behind a proxy
    if open_read:
        os.environ["ACTISCOPE_OPEN_READ"] = "1"
    runs_dir, resolved_data_dir = _migrate()
    if settings.EXPOSED and not has_users():
        at = f" --data-dir {data_dir}" if data_dir is not None else ""
        log.warning(
            f"no user yet, so nothing can be changed here: create one with `actiscope user add NAME{at}`"
        )
    return Server(host, port, workers, runs_dir, resolved_data_dir, access_log, capacity)


def _check_backend(model: Path, backend: str) -> None:
    """The package runs on the backend asked for (its file is there and loads): one line now rather than
    a 503 on every request later."""
    from actiscope.predict import Predictor

    Predictor.load(model, backend=backend)


def _check_port(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServeError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
            ) from None


def _export_environment(*, runs: Path, model: Path | None, data_dir: Path | None, workers: int) -> None:
    """What the web settings of every worker read; a variable the user set already is kept."""
    os.environ["ACTISCOPE_RUNS"] = str(runs.expanduser().resolve())
    if model is not None:
        os.environ["ACTISCOPE_MODEL"] = str(model.expanduser().resolve())
    if data_dir is not None:
        os.environ["ACTISCOPE_DATA_DIR"] = str(data_dir.expanduser().resolve())
    # the workers share the cores: each inference session gets its part of them
    os.environ.setdefault("ACTISCOPE_INFERENCE_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    prepare_environment(os.environ)  # the production settings, the data directory and its secret key


def _migrate() -> tuple[Path, Path]:
    """Apply the migrations; the runs and data folders the settings chose."""
    open_database()
    return Path(settings.RUNS_DIR), Path(settings.DATA_DIR)


def is_loopback(host: str) -> bool:
    """Whether only this machine reaches `host` (localhost, 127.0.0.0/8, ::1). Any other name or address,
    0.0.0.0 and :: included, is exposed: changes then need a login (web/access.py)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
