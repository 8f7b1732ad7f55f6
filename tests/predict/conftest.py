"""A small untrained image package, a folder of images to predict (two bad files among them), a clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from actiscope.data.synthetic import write_clip
from actiscope.models.registry import create_model
from actiscope.package import save_package
from tests.conftest import COLOURS, truncated_jpeg, write_colour_classes


@pytest.fixture
def package(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("simple-cnn", 3, image_size=32).eval()
    save_package(model, tmp_path / "pkg", class_names=sorted(COLOURS))
    return tmp_path / "pkg"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = write_colour_classes(tmp_path / "images", per_class=3)
    nested = root / "red" / "deeper" / "deepest"
    nested.mkdir(parents=True)
    Image.new("RGB", (40, 40), (230, 20, 20)).save(nested / "nested.png")
    truncated_jpeg(root / "green" / "corrupt.jpg")
    (root / "blue" / "fake.jpg").write_text("not an image")
    (root / "blue" / "notes.txt").write_text("skipped: not an image by extension")
    return root


@pytest.fixture
def three_second_clip(tmp_path: Path) -> Path:
    """36 frames of noise at 12 frames a second."""
    frames = np.random.default_rng(0).integers(0, 256, size=(36, 16, 16, 3), dtype=np.uint8)
    write_clip(tmp_path / "three_seconds.avi", frames, fps=12)
    return tmp_path / "three_seconds.avi"
