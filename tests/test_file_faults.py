"""`export` and `predict` under faults done for real: kill -9 while they write the ONNX file or the CSV, and
a full disk under the folder they write to. No half file is ever left under the final name."""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
from pathlib import Path

import pytest
import torch

from actiscope.files import leftovers
from actiscope.models.registry import create_model
from actiscope.package import load_package, read_meta, save_package
from actiscope.predict import Predictor
from tests.conftest import write_colour_classes
from tests.faults import FullDisk, actiscope, cli_argv, kill_while_writing, on_full_disk


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _one_error_line(stderr: str, folder: Path, name: str, how: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    problem = "no space left" if how == "tmpfs" else r"file too large for the file size limit \(`ulimit -f`\)"
    lines = [line for line in stderr.splitlines() if line.startswith("actiscope: error:")]
    assert len(lines) == 1 and re.fullmatch(
        rf"actiscope: error: {problem} in {folder} \(writing {re.escape(name)}\): .* choose another --out",
        lines[0],
    ), stderr[-3000:]


def _predicted(package: Path, backend: str, images: Path) -> int:
    """How many of `images` the package predicts on `backend` (workers=0: in this process)."""
    files = sorted(images.rglob("*.png"))
    results = Predictor.load(package, backend=backend).predict_files(files, workers=0)
    return sum(prediction is not None for _, prediction, _ in results)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return write_colour_classes(tmp_path / "images", per_class=2)


def test_kill_9_while_export_writes_the_onnx_file(tmp_path: Path, images: Path) -> None:
    # resnet18's 45 MB ONNX file takes long enough to write to be caught at it every time.
    package = tmp_path / "package"
    torch.manual_seed(0)
    save_package(create_model("resnet18", 3, image_size=32).eval(), package, class_names=["a", "b", "c"])
    before = _digests(package)
    log = tmp_path / "export.log"
    proc = actiscope("export", str(package), "--format", "onnx", log=log)
    caught = kill_while_writing(proc, package, pattern="*.onnx", timeout=180)
    assert caught is not None and proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    # No model.onnx, whole or half; the package as it was, and it still validates and predicts.
    assert not (package / "model.onnx").exists()
    assert {k: v for k, v in _digests(package).items() if not k.startswith(".")} == before
    assert leftovers(package / "model.onnx") == [caught]  # the temporary file, under a name nothing reads
    load_package(package)
    assert _predicted(package, "torch", images) == 6


def test_kill_9_while_predict_writes_the_csv_keeps_the_previous_one(
    trained_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "predictions.csv"
    out.write_text("filename,label\nyesterday.png,red\n")
    # 30,000 rows to write (files that are not there: an error row each, nothing to decode).
    listed = tmp_path / "inputs.txt"
    listed.write_text("".join(f"gone/{'x' * 80}{i}.png\n" for i in range(30_000)))
    log = tmp_path / "predict.log"
    proc = actiscope(
        "predict", str(trained_run), str(listed), "--out", str(out), "--backend", "onnx", log=log
    )
    caught = kill_while_writing(proc, tmp_path, pattern="*.csv", timeout=120)
    assert caught is not None and proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert caught != out and out.read_text() == "filename,label\nyesterday.png,red\n"


@pytest.mark.parametrize("command", ["export", "predict"])
def test_a_full_disk_is_one_line_and_the_previous_files_stay_whole(
    trained_run: Path, tmp_path: Path, images: Path, command: str
) -> None:
    """The package's folder (export) or the CSV's (predict) on a disk filled to the last byte (a tmpfs),
    or under a file size limit below what is written."""
    folder = tmp_path / "full"
    seed = tmp_path / "seed"
    if command == "export":
        shutil.copytree(trained_run / "model", seed)  # with its earlier model.onnx and int8 model
        name, disk = "model.onnx", FullDisk(size="16m", file_limit=1_000_000, fill=True)
        argv = cli_argv("export", str(folder), "--format", "onnx")
    else:
        seed.mkdir()
        (seed / "predictions.csv").write_text("filename,label\nyesterday.png,red\n")
        name, disk = "predictions.csv", FullDisk(size="1m", file_limit=40, fill=True)
        argv = cli_argv(
            "predict",
            str(trained_run),
            str(images),
            "--out",
            str(folder / name),
            "--backend",
            "onnx",
            "--workers",
            "0",
        )
    done, after = on_full_disk(argv, folder, disk, seed=seed)
    assert done.returncode == 74, done.stderr[-3000:]
    _one_error_line(done.stderr, folder, name, disk.how)
    # Everything there is what was there before, whole; nothing half-written beside it.
    assert _digests(after) == _digests(seed)
    if command == "export":
        read_meta(after)
        assert _predicted(after, "onnx", images) == 6
