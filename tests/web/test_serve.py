"""Starting the server: the checks that make a mistake one line before gunicorn starts."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from actiscope.errors import ActiscopeError
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


def test_the_gunicorn_command() -> None:
    server = Server("0.0.0.0", 8123, 3, Path("runs"), Path("data"), access_log=True)
    command = server.command()
    assert command[:4] == [sys.executable, "-m", "gunicorn", "actiscope.web.wsgi:application"]
    flags = dict(zip(command[4::2], command[5::2], strict=True))
    assert (
        flags["--bind"] == "0.0.0.0:8123" and flags["--workers"] == "3" and flags["--access-logfile"] == "-"
    )
    assert server.url == "http://0.0.0.0:8123/"
    assert Server("h", 1, 1, Path(), Path()).command()[-1] == "/dev/null"  # no access log unless -v
