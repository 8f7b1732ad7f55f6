"""`serve` on a runs folder from someone else: it runs no code from it (no pickle is read on any page or
prediction), and a package that would is refused with one line while nothing is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from actiscope.web import services
from actiscope.web.classify.models import Prediction
from tests.faults import code_marker, handed_over, no_unpickling, plant_code
from tests.web.conftest import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(settings: Settings, tmp_path: Path, trained_run: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app serving a handed-over copy of the tiny run (checkpoints and stray files that would run
    code); returns the file that code would create."""
    marker = code_marker(tmp_path, monkeypatch)
    handed_over(trained_run, tmp_path / "runs" / "run", marker)
    settings.RUNS_DIR = tmp_path / "runs"
    settings.MEDIA_ROOT = tmp_path / "uploads"
    settings.ACTISCOPE_MODEL = None
    services.MODEL = services.ModelService()
    return marker


def _predict(client: APIClient) -> tuple[int, object]:
    upload = SimpleUploadedFile("photo.png", png_bytes(), content_type="image/png")
    response = client.post("/api/v1/predict", {"file": upload}, format="multipart")
    return response.status_code, response.json()


def test_pages_and_predictions_read_no_pickle(served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_unpickling(monkeypatch)
    client = APIClient()
    status, body = _predict(client)
    assert status == 201 and body[0]["label"] == "red"  # type: ignore[index]
    for page in ("/", "/history", "/runs", "/runs/run", "/api/v1/runs", "/api/v1/runs/run", "/api/v1/models"):
        assert client.get(page).status_code == 200, page
    assert not served.exists()


def test_a_package_whose_model_files_would_run_code_is_refused(served: Path, tmp_path: Path) -> None:
    package = tmp_path / "runs" / "run" / "model"
    refusals = {
        "model.safetensors": "cannot read the weights",
        "model.onnx": "not a usable ONNX model",
        "model.int8.onnx": "not a usable ONNX model",
    }
    for name in refusals:  # whichever backend `auto` chooses on this CPU
        plant_code(package / name, served)
    status, body = _predict(APIClient())
    assert status == 503 and set(body) == {"error"}  # type: ignore[arg-type]
    error = body["error"]  # type: ignore[index]
    assert "\n" not in error and error.startswith("the active model cannot be loaded: ")
    assert any(f"{package / name}: {why}" in error for name, why in refusals.items()), error
    assert not served.exists() and Prediction.objects.count() == 0
