"""Faults done for real to a running `actiscope serve` (gunicorn, one worker): a full prediction queue,
the SQLite file unreadable, a full disk, kill -9 of the worker mid-upload, SIGTERM with a request in
flight, and PostgreSQL stopped and started again. One server serves the first five, in this order (the
last stops it); fault_hooks.py holds a request at a known point so that nothing depends on timing."""

from __future__ import annotations

import glob
import io
import os
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.web.conftest import png_bytes
from tests.web.servers import REPO, Answer, Background, LiveServer, start_server, wait_for

WAIT_S = 30  # the queue's wait: long, since a held request is let go by the test, not by the clock
TMPFS_MB = 16


def _noise_png(side: int = 600) -> bytes:
    """About 1 MB that does not compress: bigger than what the full disk has left."""
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _rows(server: LiveServer) -> int:
    return int(server.request("GET", "/api/v1/predictions").json()["count"])


def _files(server: LiveServer) -> list[str]:
    """Everything in the uploads folder, hidden temporary files included."""
    return sorted(p.name for p in server.uploads.iterdir()) if server.uploads.exists() else []


def _one_line_error(answer: Answer) -> str:
    body = answer.json()
    assert set(body) == {"error"} and "\n" not in body["error"], body
    return str(body["error"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bool]]:
    """The server's data directory: a small tmpfs of its own where this machine lets us mount one
    (root with CAP_SYS_ADMIN), else a plain folder; and whether it is the tmpfs."""
    data = tmp_path_factory.mktemp("served") / "data"
    data.mkdir()
    try:
        mount = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(data)]
        mounted = subprocess.run(mount, capture_output=True).returncode == 0
    except FileNotFoundError:
        mounted = False
    yield data, mounted
    if mounted:  # the server has stopped by now (its fixture ends first)
        subprocess.run(["umount", str(data)], check=True)


@pytest.fixture(scope="module")
def server(trained_run: Path, data_dir: tuple[Path, bool]) -> Iterator[LiveServer]:
    capacity = ["--slots", "1", "--queue", "1", "--queue-wait", str(WAIT_S)]
    live = start_server(trained_run.parent, data_dir[0], *capacity)
    yield live
    live.stop()


def test_a_full_queue_is_answered_at_once_and_the_queued_are_served(server: LiveServer) -> None:
    rows = _rows(server)
    hold = server.hold("predict")
    running = Background(lambda: server.predict(png_bytes()))
    wait_for(lambda: server.held("predict") == 1, "the first prediction to take the one slot")
    # the pages and the API's reads take no slot: they are answered while it is taken
    assert server.request("GET", "/history").status == 200 and _rows(server) == rows
    queued = Background(lambda: server.predict(png_bytes()))
    wait_for(lambda: server.ready().json()["predictions"]["waiting"] == 1, "the second to queue")
    refused = server.predict(png_bytes())
    assert refused.status == 503 and refused.headers["retry-after"] == str(WAIT_S)
    assert _one_line_error(refused) == (
        f"busy: 1 predictions running and 1 waiting in this worker; try again in {WAIT_S} s"
    )
    assert queued.is_alive()  # refused on arrival, not after waiting behind the queued one
    hold.unlink()
    answers = [running.result(), queued.result()]
    assert [getattr(a, "status", a) for a in answers] == [201, 201]
    assert _rows(server) == rows + 2 and server.ready().json()["predictions"]["running"] == 0


def test_an_unreadable_sqlite_file_is_503_and_recovers_without_a_restart(server: LiveServer) -> None:
    database = server.data / "actiscope.sqlite3"
    rows, files, workers = _rows(server), _files(server), server.workers()
    aside = server.data / "aside"
    aside.mkdir()
    moved = [database.with_name(database.name + s) for s in ("", "-wal", "-shm")]
    moved = [p for p in moved if p.exists()]
    for path in moved:  # no connection is open between requests
        path.rename(aside / path.name)
    database.write_bytes(b"this is not a database\n" * 256)
    try:
        ready = server.ready()
        assert ready.status == 503 and ready.json()["database"] == "unreachable: file is not a database"
        answer = server.predict(png_bytes())
        assert answer.status == 503 and answer.headers["retry-after"] == "5"
        assert _one_line_error(answer) == (
            "the database is unavailable (file is not a database); nothing was stored, try again shortly"
        )
        page = server.request("GET", "/history")
        assert page.status == 503 and page.body.decode().strip().startswith("the database is unavailable")
        assert _files(server) == files
    finally:
        database.unlink()
        for path in moved:
            (aside / path.name).rename(path)
        aside.rmdir()
    assert server.ready().status == 200 and server.predict(png_bytes()).status == 201
    assert _rows(server) == rows + 1 and server.workers() == workers


def test_a_full_disk_during_an_upload_is_one_line_and_leaves_nothing(
    server: LiveServer, data_dir: tuple[Path, bool]
) -> None:
    if not data_dir[1]:
        pytest.skip("no tmpfs to fill: mounting one needs root (CAP_SYS_ADMIN) on this machine")
    served_by = server.predict(png_bytes()).json()[0]["model_name"]
    rows, files, big = _rows(server), _files(server), _noise_png()
    filler = server.data / "filler"
    stat = os.statvfs(server.data)
    with filler.open("wb") as fh:  # leaves less than a quarter of the upload
        fh.write(b"\0" * (stat.f_bavail * stat.f_frsize - len(big) // 4))
    try:
        answer = server.predict(big, "big.png")
        assert answer.status == 507
        assert (
            _one_line_error(answer)
            == f"no space left in {server.uploads} to store big.png; nothing was stored"
        )
        assert _files(server) == files and _rows(server) == rows  # not even the temporary file is left
    finally:
        filler.unlink()
    again = server.predict(big, "big.png")
    assert again.status == 201 and again.json()[0]["model_name"] == served_by  # the same model
    assert _rows(server) == rows + 1


def test_kill_9_of_the_worker_mid_upload_leaves_no_upload_and_the_server_answers(server: LiveServer) -> None:
    rows, files = _rows(server), _files(server)
    hold = server.hold("store")
    doomed = Background(lambda: server.predict(png_bytes(), "doomed.png"))
    wait_for(lambda: server.held("store") == 1, "the upload to be written, not yet renamed")
    (partial,) = set(_files(server)) - set(files)
    assert partial.startswith(".") and ".tmp" in partial  # a temporary name: never an upload's
    (worker,) = server.workers()
    os.kill(worker, signal.SIGKILL)
    assert isinstance(doomed.result(), OSError)  # its connection died with the worker
    hold.unlink()
    wait_for(lambda: server.workers() not in ([], [worker]), "gunicorn to start another worker")
    server.wait_ready()
    assert _rows(server) == rows  # the killed request stored no row ...
    assert set(_files(server)) - set(files) == {partial}  # ... and no file under an upload's name
    listed = server.request("GET", "/api/v1/predictions?page_size=1000").json()["results"]
    assert "doomed.png" not in {row["original_name"] for row in listed}
    assert server.predict(png_bytes()).status == 201 and _rows(server) == rows + 1


def test_sigterm_lets_the_request_in_flight_finish_refuses_new_ones_and_exits_0(server: LiveServer) -> None:
    rows, held = _rows(server), server.held("predict")
    hold = server.hold("predict")
    in_flight = Background(lambda: server.predict(png_bytes()))
    wait_for(lambda: server.held("predict") == held + 1, "the prediction to be in flight")
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: any(server.holds.glob("draining-*")), "the worker to stop accepting connections")
    late = Background(lambda: server.request("GET", "/healthz"))
    hold.unlink()
    finished = in_flight.result()
    assert getattr(finished, "status", finished) == 201
    assert server.process.wait(timeout=60) == 0
    assert isinstance(late.result(), OSError)  # refused or reset: never answered
    assert "Handling signal: term" in "\n".join(server.output)
    with closing(sqlite3.connect(server.data / "actiscope.sqlite3")) as database:  # what it stored
        assert database.execute("SELECT COUNT(*) FROM classify_prediction").fetchone() == (rows + 1,)


def _burst(server: LiveServer, n: int) -> list[object]:
    """`n` predictions at once, each held until all are in: `n` threads, each with its own database
    connection; their statuses (or the OSError one ended with)."""
    hold, before = server.hold("predict"), server.held("predict")
    requests = [Background(lambda: server.predict(png_bytes())) for _ in range(n)]
    wait_for(
        lambda: server.held("predict") == before + n or not all(r.is_alive() for r in requests),
        f"{n} predictions in {n} threads at once",
    )  # or one has failed already
    hold.unlink()
    return [getattr(answer, "status", answer) for answer in (r.result() for r in requests)]


def test_postgresql_stopped_is_503_and_recovers_without_a_restart(trained_run: Path, tmp_path: Path) -> None:
    if not glob.glob("/usr/lib/postgresql/*/bin"):
        pytest.skip("no PostgreSQL here (Debian's postgresql package)")
    # not under tmp_path: the server runs as the postgres user, who cannot enter pytest's folders
    script, cluster = (
        ["bash", str(REPO / ".ci" / "postgres.sh")],
        Path(tempfile.mkdtemp(prefix="actiscope-pg-")),
    )
    url = subprocess.run([*script, "start", str(cluster)], capture_output=True, text=True).stdout.strip()
    if not url:
        pytest.skip("this machine cannot run a throwaway PostgreSQL server (.ci/postgres.sh)")
    burst = 8
    try:
        capacity = ["--slots", str(burst), "--queue", "0"]
        server = start_server(trained_run.parent, tmp_path / "data", *capacity, env={"DATABASE_URL": url})
        try:
            assert _burst(server, burst) == [201] * burst
            files, workers = _files(server), server.workers()
            subprocess.run([*script, "pause", str(cluster)], check=True)
            ready = server.ready()
            assert ready.status == 503 and ready.json()["database"].startswith("unreachable: ")
            answer = server.predict(png_bytes())
            assert answer.status == 503 and answer.headers["retry-after"] == "5"
            line = _one_line_error(answer)
            assert line.startswith("the database is unavailable (")
            assert line.endswith("); nothing was stored, try again shortly")
            assert _files(server) == files
            subprocess.run([*script, "resume", str(cluster)], check=True)
            wait_for(lambda: server.ready().status == 200, "readiness once the database is back")
            # every thread's connection from before the restart is replaced, not failed on
            assert _burst(server, burst) == [201] * burst
            assert _rows(server) == 2 * burst and server.workers() == workers  # the same process
        finally:
            server.stop()
    finally:
        subprocess.run([*script, "stop", str(cluster)], check=True)
