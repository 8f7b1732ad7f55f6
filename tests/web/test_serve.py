"""Starting the server: the checks that make a mistake one line before gunicorn starts."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

from actiscope.cli import build_parser as main_parser
from actiscope.cli.serve import capacity as serve_capacity
from actiscope.errors import ActiscopeError
from actiscope.web.admission import Capacity
from actiscope.web.serve import ServeError, Server, prepare_server


def test_a_busy_port_or_no_workers_is_one_line_and_changes_no_environment(tmp_path: Path) -> None:
    before = dict(os.environ)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServeError, match=f"cannot listen on 127.0.0.1:{port} .*; choose another --port"):
            prepare_server(runs=tmp_path, port=port)
    with pytest.raises(ServeError, match="--workers must be at least 1, got 0"):
        prepare_server(runs=tmp_path, workers=0)
    with pytest.raises(ActiscopeError, match="no such model package"):
        prepare_server(runs=tmp_path, model=tmp_path / "nowhere")
    assert dict(os.environ) == before


def _flags(command: list[str]) -> tuple[dict[str, str], list[str]]:
    """The flags of a gunicorn command line, and its --env values (the one flag given more than once)."""
    pairs = list(zip(command[4::2], command[5::2], strict=True))
    return dict(pairs), [value for flag, value in pairs if flag == "--env"]


def test_the_gunicorn_command() -> None:
    server = Server("0.0.0.0", 8123, 3, Path("runs"), Path("data"), access_log=True)
    command = server.command()
    assert command[:4] == [sys.executable, "-m", "gunicorn", "actiscope.web.wsgi:application"]
    flags, _ = _flags(command)
    assert (
        flags["--bind"] == "0.0.0.0:8123" and flags["--workers"] == "3" and flags["--access-logfile"] == "-"
    )
    assert server.url == "http://0.0.0.0:8123/"
    assert _flags(Server("h", 1, 1, Path(), Path()).command())[0]["--access-logfile"] == "/dev/null"


def test_the_capacity_reaches_gunicorn_and_the_workers_settings() -> None:
    """Threaded workers with a thread for each running and waiting prediction plus the spare ones, and
    the admission limit handed to the workers' settings through gunicorn's --env."""
    capacity = Capacity(slots=3, queue=5, wait_s=2.5)
    flags, environment = _flags(Server("h", 1, 2, Path(), Path(), capacity=capacity).command())
    assert flags["--worker-class"] == "gthread" and flags["--threads"] == str(3 + 5 + capacity.spare)
    assert int(flags["--backlog"]) > 0
    passed = dict(item.split("=", 1) for item in environment)
    assert Capacity.from_environ(passed) == capacity
    with pytest.raises(ValueError, match="at least 1"):
        Capacity(slots=0)
    cli = main_parser().parse_args(["serve", "--slots", "0"])
    with pytest.raises(ActiscopeError, match="--slots"):
        serve_capacity(cli)


def test_serve_backend_is_checked_before_gunicorn_and_is_the_one_served(
    trained_run: Path, tmp_path: Path, settings: Settings
) -> None:
    """`serve --backend onnx-int8` for a package without its int8 file is one line that names the
    export, before anything starts; a backend that is there is the one the served Predictor runs."""
    from actiscope.package import INT8_FILE
    from actiscope.run import RunDir
    from actiscope.web import services

    package = tmp_path / "model"
    shutil.copytree(RunDir(trained_run).model, package)
    (package / INT8_FILE).unlink()
    before = dict(os.environ)
    with pytest.raises(ActiscopeError, match=r"model.int8.onnx: not in the package; .*--quantize int8"):
        prepare_server(runs=tmp_path, model=package, backend="onnx-int8")
    assert dict(os.environ) == before
    args = main_parser().parse_args(["serve", "--backend", "torch"])
    assert args.backend == "torch"
    for backend in ("torch", "onnx"):
        settings.INFERENCE_BACKEND = backend
        assert services.check_package(package).backend == backend
