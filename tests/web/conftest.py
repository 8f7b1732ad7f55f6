from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from pytest_django.fixtures import Settings

from actiscope.web import services


@pytest.fixture
def web(settings: Settings, tmp_path: Path, trained_run: Path) -> Path:
    """The app pointed at the shared tiny run, with its own uploads folder and a fresh model service."""
    settings.RUNS_DIR = trained_run.parent
    settings.MEDIA_ROOT = tmp_path / "uploads"
    settings.ACTISCOPE_MODEL = None
    services.MODEL = services.ModelService()
    return tmp_path / "uploads"


def png_bytes(colour: tuple[int, int, int] = (220, 40, 40), size: tuple[int, int] = (48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def stored_files(uploads: Path) -> list[Path]:
    return [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else []
