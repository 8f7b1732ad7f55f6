"""Grad-CAM of a stored prediction is made by the model that made the prediction, never by whichever
model is active when it is asked for, and its cache is keyed on that model."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from pytest_django.fixtures import Settings

from actiscope.explain import explain
from actiscope.package import load_package, save_package
from actiscope.run import RunDir
from actiscope.web import services
from actiscope.web.classify.models import Prediction
from tests.web.conftest import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_models(settings: Settings, tmp_path: Path, trained_run: Path) -> tuple[RunDir, RunDir]:
    """runs/a: the trained model; runs/b: the same architecture and classes with other weights."""
    a, b = RunDir(tmp_path / "runs" / "a"), RunDir(tmp_path / "runs" / "b")
    shutil.copytree(trained_run, a.path)
    shutil.copytree(trained_run, b.path)
    model, meta = load_package(a.model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    save_package(model, b.model, class_names=meta.class_names, metrics=meta.metrics)
    settings.RUNS_DIR = tmp_path / "runs"
    settings.MEDIA_ROOT = tmp_path / "uploads"
    settings.ACTISCOPE_MODEL = None
    services.MODEL = services.ModelService()
    return a, b


def _pixels(png: bytes | Path) -> np.ndarray:
    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else png) as image:
        return np.asarray(image.convert("RGB"))


def _predict_with(client: Client, run: str) -> Prediction:
    assert client.post(f"/runs/{run}/activate").status_code == 302
    client.post("/", {"file": SimpleUploadedFile("photo.png", png_bytes((200, 60, 40), size=(64, 48)))})
    return Prediction.objects.latest("id")


def test_gradcam_is_made_by_the_model_that_made_the_prediction(
    two_models: tuple[RunDir, RunDir], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_models
    client = Client()
    row = _predict_with(client, "a")
    assert row.model_name == "a (simple-cnn)" and Path(row.model_path) == a.model.resolve()
    assert client.post("/runs/b/activate").status_code == 302  # B is active when the overlay is asked for

    response = client.get(f"/predictions/{row.pk}/gradcam")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    served = _pixels(b"".join(response.streaming_content))
    image = services.image_path(row)
    by_a = explain(a.model, image, out=tmp_path / "a.png", class_name=row.label).out
    by_b = explain(b.model, image, out=tmp_path / "b.png", class_name=row.label).out
    assert np.array_equal(served, _pixels(by_a))
    assert not np.array_equal(served, _pixels(by_b))  # the two models' overlays differ: the check can fail

    def no_recompute(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached overlay was not used")

    monkeypatch.setattr("actiscope.explain.explain", no_recompute)
    again = client.get(f"/predictions/{row.pk}/gradcam")
    assert again.status_code == 200 and np.array_equal(_pixels(b"".join(again.streaming_content)), served)

    client.post(f"/predictions/{row.pk}/delete", {"next": "/history"})
    assert list((tmp_path / "uploads").rglob("*.png")) == []  # the overlay goes with its prediction


def test_gradcam_says_in_one_line_when_its_model_is_gone(two_models: tuple[RunDir, RunDir]) -> None:
    a, _ = two_models
    client = Client()
    row = _predict_with(client, "a")
    _predict_with(client, "b")
    shutil.rmtree(a.model)
    response = client.get(f"/predictions/{row.pk}/gradcam")
    message = response.content.decode()
    assert response.status_code == 410 and "\n" not in message
    assert message.startswith(
        "Grad-CAM unavailable: a (simple-cnn), the model that made this prediction, is gone"
    )

    Prediction.objects.filter(pk=row.pk).update(model_path="")  # a prediction stored before 0003
    old = client.get(f"/predictions/{row.pk}/gradcam")
    assert old.status_code == 410 and "before the app recorded which model made it" in old.content.decode()


@pytest.mark.usefixtures("two_models")
def test_gradcam_refuses_a_model_retrained_in_place() -> None:
    client = Client()
    row = _predict_with(client, "a")
    Prediction.objects.filter(pk=row.pk).update(model_version="2000-01-01T00:00:00+00:00")
    response = client.get(f"/predictions/{row.pk}/gradcam")
    assert response.status_code == 410 and "was replaced at" in response.content.decode()
