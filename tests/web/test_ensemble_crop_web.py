"""The web app with the two kinds of package issue 19 added, both in one comparison's ensemble
(tests.conftest.crop_comparison): an ensemble (listed, served and timed on the dashboard like a run) of
models trained on person crops (an upload has no box: the page and the API say the whole image was
used)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from actiscope.data.images import load_image
from actiscope.predict import Predictor
from actiscope.run import CompareDir
from actiscope.web import services
from actiscope.web.classify.models import Prediction
from tests.web.conftest import png_bytes

pytestmark = pytest.mark.django_db
NOTE = "this model expects a person crop"


@pytest.fixture
def ensemble_served(settings: Settings, tmp_path: Path, crop_comparison: Path) -> str:
    """The app on the comparison's runs folder, the ensemble made active on its dashboard; its run name."""
    settings.RUNS_DIR = crop_comparison.parent
    settings.MEDIA_ROOT = tmp_path / "uploads"
    settings.ACTISCOPE_MODEL = None
    services.MODEL = services.ModelService()
    name = f"{crop_comparison.name}--ensemble"
    assert Client().post(f"/runs/{name}/activate").status_code == 302
    return name


def _photo(name: str = "photo.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes((40, 60, 220)))


def _decoded() -> Image.Image:
    """The upload as the service decodes it."""
    return load_image(io.BytesIO(png_bytes((40, 60, 220))))


def test_the_ensemble_is_listed_timed_served_and_not_explained(
    ensemble_served: str, crop_comparison: Path
) -> None:
    client = Client()
    runs = client.get("/runs").content.decode()
    assert f'href="/runs/{ensemble_served}"' in runs and "ensemble(simple-cnn+squeezenet1_1)" in runs
    row = next(r for r in services.leaderboards()[0].rows if r["model"].startswith("ensemble("))
    assert float(row["infer_ms"]) > 0 and f"<td>{row['infer_ms']}</td>" in runs  # its cost, measured
    assert "Starting weights: its members" in client.get(f"/runs/{ensemble_served}").content.decode()

    answer = APIClient().post("/api/v1/predict", {"file": [_photo()]}, format="multipart")
    assert answer.status_code == 201, answer.content
    (body,) = answer.json()
    # the whole upload, as no box is known: the ensemble's probabilities for the whole image
    expected = Predictor.load(CompareDir(crop_comparison).ensemble.model).predict([_decoded()])[0]
    assert body["model_name"] == "ensemble (ensemble(simple-cnn+squeezenet1_1))"
    assert body["label"] == expected.label
    assert np.isclose(body["confidence"], expected.confidence, atol=1e-6)
    gradcam = client.get(f"/predictions/{body['id']}/gradcam")
    assert gradcam.status_code == 409 and b"Grad-CAM explains one model" in gradcam.content


def test_a_person_crop_model_says_the_whole_upload_was_used(ensemble_served: str) -> None:
    page = Client().post("/", {"file": _photo()}).content.decode()
    assert NOTE in page and "the whole image was used" in page
    (body,) = APIClient().post("/api/v1/predict", {"file": [_photo()]}, format="multipart").json()
    assert body["input_note"].startswith(NOTE) and "margin 0.1" in body["input_note"]
    assert Prediction.objects.get(pk=body["id"]).input_note == body["input_note"]
    live = APIClient().post("/api/v1/live", {"frame": _photo("frame.jpg")}, format="multipart").json()
    assert live["note"] == body["input_note"] and live["saved"] is None
