from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from actiscope.cli import main
from actiscope.engine.fit import train
from actiscope.explain import class_activation_map, explain
from actiscope.models.registry import create_model, list_models
from actiscope.options import TrainOptions

PATCH = {"red": (230, 30, 30), "blue": (30, 30, 230)}


def _patch_image(colour: tuple[int, int, int], top: int, left: int, seed: int, size: int = 64) -> Image.Image:
    """Grey noise everywhere; the class is only in a 16x16 colour patch."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(70, 190, size=(size, size, 1)).repeat(3, axis=2).astype(np.uint8)
    pixels[top : top + 16, left : left + 16] = colour
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def patch_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("patches")
    rng = np.random.default_rng(0)
    for name, colour in PATCH.items():
        (root / "data" / name).mkdir(parents=True)
        for i in range(40):
            top, left = (int(v) for v in rng.integers(0, 48, size=2))
            _patch_image(colour, top, left, seed=i + 100 * len(name)).save(root / "data" / name / f"{i}.png")
    config = TrainOptions.from_flat(
        data=str(root / "data"),
        model="simple-cnn",
        image_size=64,
        epochs=6,
        batch_size=16,
        lr=3e-3,
        workers=0,
        augment="none",
        export="none",
        cache=False,
        out=str(root / "runs"),
        name="run",
    )
    return train(config).run_dir


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_heat_map_peaks_on_the_region_that_carries_the_class(
    patch_run: Path, tmp_path: Path, method: str
) -> None:
    top, left = 40, 8
    path = tmp_path / "probe.png"
    _patch_image(PATCH["red"], top, left, seed=999).save(path)
    result = explain(patch_run, path, method=method)
    assert result.target == "red" and result.top[0][0] == "red"
    row, col = np.unravel_index(result.heatmap.argmax(), result.heatmap.shape)
    assert top - 8 <= row < top + 16 + 8 and left - 8 <= col < left + 16 + 8, (row, col)
    # Far from the patch, the map is low.
    assert result.heatmap[:16, 40:].mean() < 0.5 * result.heatmap[top : top + 16, left : left + 16].mean()


@pytest.mark.parametrize(
    "name", [e.name for e in list_models("image")] + ["timm/resnet10t", "timm/vit_tiny_patch16_224"]
)
def test_every_architecture_has_a_cam_layer_that_works(name: str) -> None:
    size = 224 if "vit" in name else 64
    torch.manual_seed(0)
    model = create_model(name, 3, image_size=size)
    heatmap, probs, index = class_activation_map(model, torch.randn(1, 3, size, size), target=1)
    assert heatmap.shape == (size, size) and np.isfinite(heatmap).all()
    assert heatmap.min() >= 0 and heatmap.max() <= 1 and index == 1
    assert probs.sum() == pytest.approx(1, abs=1e-4)


def test_explain_cli(patch_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "photo.png"
    _patch_image(PATCH["blue"], 8, 30, seed=5, size=80).save(image)
    out = tmp_path / "overlay.png"
    assert main(["explain", str(patch_run), str(image), "--out", str(out), "--class", "red"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("1. blue") and "2. red" in printed and "for 'red'" in printed
    with Image.open(out) as overlay:
        assert overlay.size == (160, 80 + 24)  # original and overlay side by side, at the image's size
    assert main(["explain", str(patch_run), str(image), "--class", "green"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--class 'green' is not a class of this model: blue, red" in err
    assert main(["explain", str(patch_run), str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg" in capsys.readouterr().err
