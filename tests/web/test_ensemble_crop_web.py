"""The web app with the two kinds of package issue 19 added: a comparison's ensemble (listed, served and
timed on the dashboard like a run) and a model trained on person crops (an upload has no box: the page and
the API say the whole image was used)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from actiscope.data.images import load_image
from actiscope.models.registry import create_model
from actiscope.package import read_meta, save_package
from actiscope.predict import Predictor
from actiscope.run import CompareDir
from actiscope.web import services
from actiscope.web.classify.models import Prediction
from tests.conftest import COLOURS
from tests.web.conftest import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def comparison_served(settings: Settings, tmp_path: Path, ensemble_comparison: Path) -> Path:
    settings.RUNS_DIR = ensemble_comparison.parent
    settings.MEDIA_ROOT = tmp_path / "uploads"
    settings.ACTISCOPE_MODEL = None
    services.MODEL = services.ModelService()
    return ensemble_comparison


def _photo(name: str = "photo.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes((40, 60, 220)))


def test_the_ensemble_is_listed_timed_served_and_not_explained(comparison_served: Path) -> None:
    client = Client()
    runs = client.get("/runs").content.decode()
    name = f"{comparison_served.name}--ensemble"
    assert f'href="/runs/{name}"' in runs and "ensemble(simple-cnn+squeezenet1_1)" in runs
    row = next(r for r in services.leaderboards()[0].rows if r["model"].startswith("ensemble("))
    assert float(row["infer_ms"]) > 0 and f"<td>{row['infer_ms']}</td>" in runs  # its cost, measured

    assert client.post(f"/runs/{name}/activate").status_code == 302
    answer = APIClient().post("/api/v1/predict", {"file": [_photo()]}, format="multipart")
    assert answer.status_code == 201, answer.content
    (body,) = answer.json()
    package = CompareDir(comparison_served).ensemble.model
    expected = Predictor.load(package).predict([_decoded()], top_k=3)[0]
    assert body["model_name"] == "ensemble (ensemble(simple-cnn+squeezenet1_1))"
    assert body["label"] == expected.label and body["confidence"] == pytest.approx(
        expected.confidence, abs=1e-6
    )
    assert body["input_note"] == ""  # trained on whole images: nothing to say
    gradcam = client.get(f"/predictions/{body['id']}/gradcam")
    assert gradcam.status_code == 409 and b"Grad-CAM explains one model" in gradcam.content


def _decoded() -> Image.Image:
    """The upload as the service decodes it."""
    return load_image(io.BytesIO(png_bytes((40, 60, 220))))


@pytest.fixture
def crop_model(settings: Settings, tmp_path: Path) -> Path:
    """A (untrained) package recorded as trained on person crops, served with --model."""
    torch.manual_seed(0)
    model = create_model("simple-cnn", 3, image_size=32)
    save_package(model, tmp_path / "crop", class_names=sorted(COLOURS), person_crop=0.1)
    settings.RUNS_DIR = tmp_path / "no-runs"
    settings.MEDIA_ROOT = tmp_path / "uploads"
    settings.ACTISCOPE_MODEL = str(tmp_path / "crop")
    services.MODEL = services.ModelService()
    return tmp_path / "crop"


def test_a_person_crop_model_says_the_whole_upload_was_used(crop_model: Path) -> None:
    assert read_meta(crop_model).person_crop == 0.1
    page = Client().post("/", {"file": _photo()}).content.decode()
    note = "this model expects a person crop"
    assert note in page and "the whole image was used" in page
    (body,) = APIClient().post("/api/v1/predict", {"file": [_photo()]}, format="multipart").json()
    assert body["input_note"].startswith(note) and "margin 0.1" in body["input_note"]
    assert Prediction.objects.get(pk=body["id"]).input_note == body["input_note"]
    live = APIClient().post("/api/v1/live", {"frame": _photo("frame.jpg")}, format="multipart").json()
    assert live["note"] == body["input_note"] and live["saved"] is None
    # the whole image, indeed: the same probabilities as the Predictor given no box
    whole = Predictor.load(crop_model).predict([_decoded()], top_k=3)[0]
    assert np.isclose(body["confidence"], whole.confidence, atol=1e-6)
