"""Real `actiscope serve` processes for the fault tests: started on a free port with the holds of
fault_hooks.py, asked over HTTP, their workers found and signalled, and stopped whatever happens."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actiscope.web.setup import PRODUCTION_SETTINGS

REPO = Path(__file__).resolve().parents[2]
START_S = 120  # a cold start on two shared cores: Django, the migrations, the first model load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def multipart(data: bytes, name: str = "photo.png", field_name: str = "file") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return (
        head.encode() + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


@dataclass
class LiveServer:
    process: subprocess.Popen[str]
    port: int
    data: Path  # its data directory: database and uploads
    holds: Path  # fault_hooks.py's folder
    output: list[str] = field(default_factory=list)  # gunicorn's log so far, line by line

    @property
    def uploads(self) -> Path:
        return self.data / "uploads"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=90)
        try:
            conn.request(method, path, body, headers or {})
            response = conn.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def predict(self, data: bytes, name: str = "photo.png") -> Answer:
        body, kind = multipart(data, name)
        return self.request("POST", "/api/v1/predict", body, {"Content-Type": kind})

    def ready(self) -> Answer:
        return self.request("GET", "/readyz")

    def wait_ready(self) -> None:
        def up() -> bool:
            assert self.process.poll() is None, "the server exited:\n" + "\n".join(self.output[-20:])
            try:
                return self.ready().status == 200
            except OSError:
                return False

        try:
            wait_for(up, "the server to be ready", START_S)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log ends:\n" + "\n".join(self.output[-20:])) from None

    def workers(self) -> list[int]:
        """The pids of gunicorn's workers (`actiscope serve` became the master by exec)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []

    def hold(self, name: str) -> Path:
        """Start holding requests at `name` (fault_hooks.py); remove the returned file to let them go."""
        hold = self.holds / f"hold-{name}"
        hold.touch()
        return hold

    def held(self, name: str) -> int:
        return len(list(self.holds.glob(f"at-{name}-*")))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Background(threading.Thread):
    """A request running in a thread: `result()` is its answer, or the OSError it ended with."""

    def __init__(self, call: Callable[[], Answer]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self._answer: Answer | OSError | None = None
        self.start()

    def run(self) -> None:
        try:
            self._answer = self._call()
        except OSError as exc:  # a connection reset or refused is an outcome the tests look at
            self._answer = exc

    def result(self, timeout: float = 90) -> Answer | OSError:
        self.join(timeout)
        assert self._answer is not None, "the request did not end"
        return self._answer


def start_server(runs: Path, data: Path, *args: str, env: dict[str, str] | None = None) -> LiveServer:
    """`actiscope serve` on a free port, one worker unless `args` say otherwise, with fault_hooks.py."""
    holds = data.parent / f"{data.name}-holds"
    holds.mkdir(exist_ok=True)
    port = free_port()
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": PRODUCTION_SETTINGS,
        "GUNICORN_CMD_ARGS": "--config python:tests.web.fault_hooks",
        "ACTISCOPE_TEST_HOLDS": str(holds),
        "ACTISCOPE_THROTTLE": "1000000",  # every client is 127.0.0.1 here
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    environ.pop("ACTISCOPE_SECRET_KEY", None)
    command = [sys.executable, "-m", "actiscope.cli", "serve", "--runs", str(runs), "--port", str(port)]
    command += ["--data-dir", str(data), "--workers", "1", *args]
    process = subprocess.Popen(
        command, env=environ, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    server = LiveServer(process, port, data, holds)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.output.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server
