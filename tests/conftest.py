"""Builders for tiny datasets in tmp_path: every test makes the files it reads."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Tests run on the CPU, always, and quietly.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# The web app's settings read these at import: the test run keeps its database, uploads and secret
# key in a folder of its own, never in the user's ~/.local/share/actiscope.
os.environ.setdefault("ACTISCOPE_DATA_DIR", tempfile.mkdtemp(prefix="actiscope-test-data-"))


class Records(logging.Handler):
    """Every message a logger it is added to receives (the tests of what the CLI and training log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def noise_image(
    seed: int, size: tuple[int, int] = (40, 32), tint: tuple[int, int, int] = (0, 0, 0)
) -> Image.Image:
    """A unique random image (no two seeds are near duplicates of each other)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 200, size=(size[1], size[0], 3)).astype(np.int32) + np.array(tint) // 4
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def write_image(path: Path, seed: int, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_image(seed, **kw).save(path)  # type: ignore[arg-type]
    return path


def write_class_folders(root: Path, classes: dict[str, int], *, start: int = 0) -> list[Path]:
    """root/<class>/<class>_<i>.png with `count` unique images per class."""
    paths, seed = [], start
    for name, count in classes.items():
        for i in range(count):
            paths.append(write_image(root / name / f"{name}_{i}.png", seed))
            seed += 1
    return paths


def truncated_jpeg(path: Path, seed: int = 999) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_image(seed, size=(64, 64)).save(path, format="JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA


COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def write_colour_classes(root: Path, per_class: int = 30, size: int = 40, start: int = 0) -> Path:
    """A dataset a tiny CNN learns in two epochs: each class is a colour under heavy noise."""
    rng = np.random.default_rng(start)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-60, 60, size=(size, size, 3))
            pixels = np.clip(np.array(colour) * rng.uniform(0.6, 1.0) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{i}.png")
    return root


@pytest.fixture
def colour_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_classes(tmp_path_factory.mktemp("colours"))


@pytest.fixture
def offline_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torchvision hub cache and weights store of the test's own, and no download: torch.hub's
    download (behind torchvision's weights and timm's URLs) fails as it does offline. The model tests
    all run so (tests/models/conftest.py)."""
    from urllib.error import URLError

    import torch

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise URLError(f"no network in tests ({url})")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("ACTISCOPE_WEIGHTS", str(tmp_path / "weights-store"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own decoded-image cache folder."""
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("ACTISCOPE_CACHE", str(path))
    return path


@pytest.fixture(autouse=True)
def cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test's outcome depends on the CPU that runs it: `--precision auto` sees a CPU without native
    bf16 everywhere (fp32). tests/test_hardware.py simulates bf16-capable CPUs on top of this."""
    from actiscope import hardware

    real = hardware.cpu_info()
    pinned = hardware.CpuInfo(real.model, real.flags - set(hardware.BF16_FLAGS))
    monkeypatch.setattr(hardware, "cpu_info", lambda: pinned)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on the colour task, with the ONNX and int8 files training adds. Shared:
    tests that change its package work on a copy."""
    from actiscope.options import TrainOptions
    from actiscope.workflows import train

    root = tmp_path_factory.mktemp("trained")
    data = write_colour_classes(root / "data")
    config = TrainOptions.from_flat(
        data=str(data),
        model="simple-cnn",
        image_size=32,
        epochs=3,
        batch_size=8,
        lr=3e-3,
        workers=0,
        augment="light",
        out=str(root / "runs"),
        name="run",
        cache=False,
        precision="32",
    )
    return train(config).run_dir


# The proof-of-time models: trained once per session on the moving-squares clips (data.synthetic) and
# shared by the video tests. Budgets are epochs on 168 training clips of 16 frames at 32 px, in fp32 on every
# CPU (session fixtures start before the per-test CPU pin above).
VIDEO_BUDGETS = {"convlstm": (10, 3e-3), "cnn-lstm": (15, 3e-3), "r3d_18": (5, 1e-3), "frame-avg": (6, 3e-3)}


@pytest.fixture(scope="session")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from actiscope.data.synthetic import make_moving_squares

    return make_moving_squares(tmp_path_factory.mktemp("squares") / "data", clips_per_class=60, groups=20)


@pytest.fixture(scope="session")
def video_runs(tmp_path_factory: pytest.TempPathFactory, squares: Path) -> dict[str, Path]:
    from actiscope.options import TrainOptions
    from actiscope.workflows import train

    out = tmp_path_factory.mktemp("video-runs")
    runs = {}
    for name, (epochs, lr) in VIDEO_BUDGETS.items():
        config = TrainOptions.from_flat(
            data=str(squares),
            model=name,
            image_size=32,
            frames=16,
            epochs=epochs,
            lr=lr,
            batch_size=16,
            warmup_epochs=1,
            augment="none",
            workers=0,
            out=str(out),
            precision="32",
            name=name,
            export="onnx" if name == "convlstm" else "none",
        )
        runs[name] = train(config).run_dir
    return runs


# A tiny Stanford 40 layout (VOC-style XML person boxes) where the person's colour is the class and the
# background is the other class's colour: only the crop to the person box shows the class.
STANFORD_CLASSES = {"red": "blue", "blue": "red"}  # the person's colour: the background's
PERSON_BOX = (18, 8, 46, 44)  # xmin, ymin, xmax, ymax in a 64 x 48 photo


def write_stanford40(root: Path, train: int = 14, test: int = 6) -> Path:
    """JPEGImages/, XMLAnnotations/ (one person box each) and ImageSplits/ for STANFORD_CLASSES."""
    rng = np.random.default_rng(0)
    for folder in ("JPEGImages", "XMLAnnotations", "ImageSplits"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "ImageSplits" / "actions.txt").write_text(
        "action_name\tnumber_of_images\n" + "".join(f"{c}\t{train + test}\n" for c in STANFORD_CLASSES)
    )
    xmin, ymin, xmax, ymax = PERSON_BOX
    for action, background in STANFORD_CLASSES.items():
        names = [f"{action}_{i:03d}.jpg" for i in range(train + test)]
        for name in names:
            pixels = np.empty((48, 64, 3))
            pixels[:] = COLOURS[background]
            pixels[ymin:ymax, xmin:xmax] = COLOURS[action]
            noisy = np.clip(pixels * rng.uniform(0.7, 1.0) + rng.integers(-40, 40, pixels.shape), 0, 255)
            Image.fromarray(noisy.astype(np.uint8)).save(root / "JPEGImages" / name, quality=95)
            (root / "XMLAnnotations" / name.replace(".jpg", ".xml")).write_text(
                f"<annotation><filename>{name}</filename><object><name>person</name><bndbox><xmin>{xmin}</xmin>"
                f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object></annotation>"
            )
        (root / "ImageSplits" / f"{action}_train.txt").write_text("\n".join(names[:train]) + "\n")
        (root / "ImageSplits" / f"{action}_test.txt").write_text("\n".join(names[train:]) + "\n")
    return root


@pytest.fixture(scope="session")
def crop_comparison(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`actiscope compare --ensemble 2 --crop-person` of two tiny models on the Stanford 40 layout above:
    the comparison folder (runs/, leaderboard, ensemble/) inside a runs folder of its own (its parent);
    the data is in <its parent's parent>/stanford. Shared: tests that change its packages work on a copy
    (or evaluate into a folder of their own)."""
    from actiscope.cli import main

    root = tmp_path_factory.mktemp("crops")
    data = write_stanford40(root / "stanford")
    out = root / "runs" / "contest"
    code = main(
        [
            "compare",
            str(data),
            "--models",
            "simple-cnn,squeezenet1_1",
            "--ensemble",
            "2",
            "--crop-person",
            "--out",
            str(out),
            "--image-size",
            "32",
            "--epochs",
            "3",
            "--batch-size",
            "8",
            "--lr",
            "3e-3",
            "--workers",
            "0",
            "--augment",
            "none",
            "--export",
            "none",
            "--no-cache",
            "--precision",
            "32",
        ]
    )
    assert code == 0
    return out
