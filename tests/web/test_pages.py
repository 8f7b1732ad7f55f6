from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings

from actiscope.evaluate.report import evaluate
from actiscope.package import load_package, save_package
from actiscope.web import services
from actiscope.web.classify.models import ActiveModel, Prediction
from actiscope.web.setup import PRODUCTION_SETTINGS
from tests.web.conftest import png_bytes, stored_files

pytestmark = pytest.mark.django_db


def _upload(client: Client, name: str = "photo.png", data: bytes | None = None) -> object:
    return client.post("/", {"file": SimpleUploadedFile(name, png_bytes() if data is None else data)})


def test_classify_page_shows_bars_and_history_lists_it(web: Path) -> None:
    client = Client()
    page = client.get("/")
    assert (
        page.status_code == 200 and b'type="file"' in page.content and b"csrfmiddlewaretoken" in page.content
    )
    assert b"/static/actiscope/classify.js" in page.content and b"https://" not in page.content
    for asset in ("/static/actiscope/style.css", "/static/actiscope/classify.js"):
        served = client.get(asset)
        assert served.status_code == 200 and len(b"".join(served.streaming_content)) > 100
    result = _upload(client, "<img src=x onerror=alert(1)>.png")
    html = result.content.decode()
    assert result.status_code == 200 and 'class="fill"' in html and "run (simple-cnn)" in html
    assert "<img src=x onerror" not in html and "&lt;img src=x onerror=alert(1)&gt;.png" in html  # escaped
    row = Prediction.objects.get()
    assert client.get(f"/predictions/{row.pk}/image").status_code == 200

    history = client.get("/history").content.decode()
    assert f"/predictions/{row.pk}/image" in history and row.label in history
    assert f"/predictions/{row.pk}/image" not in client.get("/history?label=nothing").content.decode()
    gone = client.post(f"/predictions/{row.pk}/delete", {"next": "/history"})
    assert gone.status_code == 302 and Prediction.objects.count() == 0 and stored_files(web) == []


def test_delete_redirects_only_within_this_site(web: Path) -> None:
    client = Client()
    for target, expected in (
        ("https://evil.example/phish", "/history"),
        ("//evil.example", "/history"),
        ("/history?label=a", "/history?label=a"),
    ):
        _upload(client, "x.png")
        row = Prediction.objects.latest("pk")
        gone = client.post(f"/predictions/{row.pk}/delete", {"next": target})
        assert gone.status_code == 302 and gone["Location"] == expected, target


def test_classify_page_form_error_keeps_nothing(web: Path) -> None:
    response = _upload(Client(), "fake.jpg", b"not an image")
    assert response.status_code == 400 and b'class="error"' in response.content
    assert Prediction.objects.count() == 0 and stored_files(web) == []


def test_form_keeps_csrf_protection(web: Path) -> None:
    response = _upload(Client(enforce_csrf_checks=True))
    assert response.status_code == 403 and Prediction.objects.count() == 0


def test_gradcam_on_request(web: Path) -> None:
    client = Client()
    _upload(client)
    row = Prediction.objects.get()
    response = client.get(f"/predictions/{row.pk}/gradcam")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_dashboard_run_page_gallery_and_activation(web: Path, trained_run: Path) -> None:
    evaluate(trained_run, backend="torch", workers=0)
    client = Client()
    runs = client.get("/runs").content.decode()
    assert 'href="/runs/run"' in runs and "finished" in runs
    page = client.get("/runs/run").content.decode()
    assert "/runs/run/files/curves.png" in page and "/runs/run/files/eval/confusion_matrix.png" in page
    assert "<td>red</td>" in page
    assert "active one" in page  # the only run with a model is served by default
    assert client.get("/runs/run/files/curves.png").status_code == 200
    assert client.get("/runs/run/files/config.yaml").status_code == 404  # only the dashboard's files
    assert client.get("/runs/run/files/../../etc/passwd").status_code == 404
    gallery = client.get("/runs/run/gallery").content.decode()
    assert gallery.count("<figure") == 12 and "/runs/run/gallery/" in gallery
    assert client.post("/runs/run/activate").status_code == 302
    assert ActiveModel.objects.get().path == str(trained_run / "model")
    assert client.get("/runs/missing").status_code == 404


def test_run_page_names_the_starting_weights(
    settings: Settings, tmp_path: Path, trained_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "runs" / "run"
    shutil.copytree(trained_run, run)
    model, meta = load_package(run)
    weights = {"name": "imagenet", "source": "actiscope store", "sha256": "9e5df75c319d" + "0" * 52}
    save_package(model, run / "model", class_names=meta.class_names, metrics=meta.metrics, weights=weights)
    settings.RUNS_DIR = tmp_path / "runs"
    monkeypatch.setattr(services, "MODEL", services.ModelService())
    page = Client().get("/runs/run").content.decode()
    assert "<p>Starting weights: imagenet (actiscope store, sha256 9e5df75c319d…)</p>" in page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_gunicorn_with_migrations_and_a_lazy_model(trained_run: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "ACTISCOPE_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": PRODUCTION_SETTINGS,
    }
    env.pop("ACTISCOPE_SECRET_KEY", None)  # the data directory's own key, made by web.setup
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actiscope.cli",
            "serve",
            "--runs",
            str(trained_run.parent),
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as response:
                    body, server_header = response.read().decode(), response.headers.get("Server", "")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.5)
        assert '"ready": true' in body and "gunicorn" in server_header.lower()
        assert (tmp_path / "data" / "actiscope.sqlite3").is_file()  # migrations applied
        assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/" in output

    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the server's connections may be in TIME_WAIT
    busy.bind(("127.0.0.1", port))
    busy.listen()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "actiscope.cli", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        busy.close()
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
