"""Faults the app answers in one line, in process: a damaged model package chosen as active (refused,
the model served so far stays), a full prediction queue (503 + Retry-After at once), the database gone
(503, nothing stored). The same faults against a real gunicorn server are in test_serve_faults.py."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.test import Client
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from actiscope.package import META_FILE, WEIGHTS_FILE
from actiscope.web import services
from actiscope.web.admission import Admission, Busy, Capacity
from actiscope.web.classify.models import ActiveModel, Prediction
from tests.web.conftest import png_bytes, stored_files

pytestmark = pytest.mark.django_db


def _file() -> SimpleUploadedFile:
    return SimpleUploadedFile("photo.png", png_bytes(), content_type="image/png")


def _served_by(client: APIClient) -> str:
    response = client.post("/api/v1/predict", {"file": _file()}, format="multipart")
    assert response.status_code == 201, response.content
    return str(response.json()[0]["model_name"])


@pytest.fixture
def two_runs(settings: Settings, tmp_path: Path, trained_run: Path) -> Path:
    """runs/good and runs/bad, copies of the shared tiny run; the app serves runs/ with its own uploads."""
    runs = tmp_path / "runs"
    for name in ("good", "bad"):
        shutil.copytree(trained_run, runs / name)
    settings.RUNS_DIR, settings.MEDIA_ROOT, settings.ACTISCOPE_MODEL = runs, tmp_path / "uploads", None
    services.MODEL = services.ModelService()
    return runs


def _truncate(model: Path) -> None:
    weights = model / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])


def _edit_header(model: Path) -> None:
    """A tensor's data offsets moved in the header: the file no longer says where its bytes are."""
    weights = model / WEIGHTS_FILE
    raw = weights.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = raw[8 : 8 + size].decode()
    edited = header.replace('"data_offsets":[0,', '"data_offsets":[4,', 1)
    assert edited != header
    weights.write_bytes(raw[:8] + edited.encode() + raw[8 + size :])


def _edit_meta(**changes: object) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        meta = json.loads((model / META_FILE).read_text())
        for key, value in changes.items():
            meta[key] = value(meta[key]) if callable(value) else value
        (model / META_FILE).write_text(json.dumps(meta))

    return edit


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_truncate, f"{WEIGHTS_FILE}: cannot read the weights"),
        (_edit_header, f"{WEIGHTS_FILE}: cannot read the weights"),
        # the backend refuses a model file unlike model.json on loading it (its ONNX file's input and
        # output shapes, the weights' tensors), before the trial prediction would
        (_edit_meta(class_names=lambda names: [*names, "extra"]), "does not match model.json"),
        (_edit_meta(architecture="resnet18"), "holds simple-cnn weights but"),
        (_edit_meta(image_size=48), "does not match model.json"),
        (lambda model: (model / META_FILE).write_text('{"architecture": '), f"{META_FILE}: unreadable"),
    ],
    ids=["truncated-weights", "edited-header", "extra-class", "other-architecture", "other-size", "cut-json"],
)
def test_a_damaged_package_is_refused_and_the_served_model_stays(
    two_runs: Path, tamper: Callable[[Path], None], message: str
) -> None:
    api, pages = APIClient(), Client()
    assert pages.post("/runs/good/activate").status_code == 302
    assert _served_by(api) == "good (simple-cnn)"
    tamper(two_runs / "bad" / "model")
    refused = pages.post("/runs/bad/activate")
    assert refused.status_code == 422
    (line,) = [ln for ln in refused.content.decode().splitlines() if 'class="error"' in ln]
    assert "not made active, the model served so far stays" in line and message in line, line
    assert str(two_runs / "bad" / "model") in line  # it names the package
    assert ActiveModel.objects.get().path == str(two_runs / "good" / "model")
    assert _served_by(api) == "good (simple-cnn)"
    services.MODEL = services.ModelService()  # another worker process: it reads the active model afresh
    assert _served_by(api) == "good (simple-cnn)"


def test_a_whole_package_is_made_active_and_served_at_once(two_runs: Path) -> None:
    api, pages = APIClient(), Client()
    assert _served_by(api) in ("good (simple-cnn)", "bad (simple-cnn)")  # the newest run, by default
    for name in ("bad", "good"):
        assert pages.post(f"/runs/{name}/activate").status_code == 302
        assert _served_by(api) == f"{name} (simple-cnn)"


def test_a_full_queue_is_answered_at_once_with_retry_after(web: Path, settings: Settings) -> None:
    settings.PREDICT_CAPACITY = Capacity(slots=1, queue=0, wait_s=3)
    services.MODEL = services.ModelService()
    api, pages = APIClient(), Client()
    with services.MODEL.admitted():  # the one slot is taken, as by a prediction in progress
        busy = api.post("/api/v1/predict", {"file": _file()}, format="multipart")
        assert busy.status_code == 503 and busy["Retry-After"] == "3"
        assert busy.json() == {
            "error": "busy: 1 predictions running and 0 waiting in this worker; try again in 3 s"
        }
        page = pages.post("/", {"file": _file()})
        assert (
            page.status_code == 503 and page["Retry-After"] == "3" and b"busy: 1 predictions" in page.content
        )
        live = api.post("/api/v1/live", {"frame": _file()}, format="multipart")
        assert live.status_code == 503 and live["Retry-After"] == "3"
        assert api.get("/api/v1/predictions").status_code == 200  # reads take no slot
        assert Prediction.objects.count() == 0 and stored_files(web) == []
    assert _served_by(api) == "run (simple-cnn)"  # the slot is free again


def test_admission_queues_up_to_its_limit_and_for_its_wait() -> None:
    admission = Admission(Capacity(slots=1, queue=1, wait_s=30))
    admission.acquire()  # the running prediction
    admission.refuse_when_full()  # there is room in the queue: no refusal
    queued: list[str] = []

    def waiter() -> None:
        admission.acquire()
        queued.append("admitted")
        admission.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    while admission.waiting == 0:  # until the waiter is in the queue
        thread.join(0.01)
    with pytest.raises(Busy, match="1 predictions running and 1 waiting") as full:
        admission.acquire()  # the queue is full: refused without waiting
    assert full.value.retry_after == 30 and queued == []
    with pytest.raises(Busy, match="1 predictions running and 1 waiting"):
        admission.refuse_when_full()  # the look the views take before reading an upload
    admission.release()
    thread.join(10)
    assert queued == ["admitted"] and admission.waiting == 0

    short = Admission(Capacity(slots=1, queue=1, wait_s=0.05))
    short.acquire()
    with pytest.raises(Busy, match=r"no prediction slot came free within 0\.05 s") as waited:
        short.acquire()
    assert waited.value.retry_after == 1 and short.waiting == 0


def test_the_database_gone_is_503_in_one_line_and_stores_nothing(
    web: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-process half: whatever raises the database's error, the answer is one line (the real
    outage, a stopped PostgreSQL and an unreadable SQLite file, is in test_serve_faults.py)."""

    def gone(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused\nmore")

    monkeypatch.setattr(services.MODEL, "active_path", gone)
    api, pages = Client(raise_request_exception=False), Client(raise_request_exception=False)
    response = api.post("/api/v1/predict", {"file": _file()})
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {
        "error": "the database is unavailable (connection to server at 127.0.0.1 failed: Connection "
        "refused); nothing was stored, try again shortly"
    }
    page = pages.post("/", {"file": _file()})
    assert page.status_code == 503 and page.content.decode().count("\n") == 1
    assert page.content.startswith(b"the database is unavailable")
    assert stored_files(web) == []
    ready = api.get("/readyz")
    assert ready.status_code == 503 and ready.json()["model"].startswith("unavailable: connection")
