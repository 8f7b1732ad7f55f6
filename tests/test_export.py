from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from actiscope.cli import main
from actiscope.errors import ActiscopeError
from actiscope.export import ExportError, export
from actiscope.package import load_package, read_meta, record_export, save_package
from actiscope.predict import Predictor

pytest.importorskip("onnxruntime")


def test_training_adds_checked_onnx_and_int8_and_predict_uses_them(trained_run: Path) -> None:
    package = trained_run / "model"
    meta = read_meta(package)
    assert (package / "model.onnx").is_file() and (package / "model.int8.onnx").is_file()
    assert meta.exports["model.onnx"]["max_prob_diff"] < 1e-4
    int8 = meta.exports["model.int8.onnx"]
    assert int8["test_images"] > 0 and int8["fp32_accuracy"] >= 0.9
    torch_rate = meta.exports["model.onnx"][
        "torch_per_s"
    ]  # the rule of choose_backend, on the measured rates
    faster = int8["int8_images_per_s"] > max(int8["fp32_images_per_s"], torch_rate)
    expected = "onnx-int8" if int8["fp32_accuracy"] - int8["int8_accuracy"] <= 0.005 and faster else "onnx"
    assert Predictor.load(trained_run).backend == expected


def test_auto_backend_follows_the_recorded_checks(trained_run: Path, tmp_path: Path) -> None:
    package = tmp_path / "model"
    shutil.copytree(trained_run / "model", package)
    recorded = json.loads((package / "model.json").read_text())["exports"]["model.onnx"]
    assert recorded["torch_per_s"] > 0 and recorded["onnx_per_s"] > 0  # measured at export
    record_export(package, "model.onnx", {**recorded, "torch_per_s": 50.0, "onnx_per_s": 100.0})
    speed = {"fp32_images_per_s": 100.0, "int8_images_per_s": 180.0}
    record_export(package, "model.int8.onnx", {"fp32_accuracy": 0.9, "int8_accuracy": 0.8, **speed})
    assert Predictor.load(package).backend == "onnx"  # int8 lost 10 points: not used
    slower = {"fp32_images_per_s": 100.0, "int8_images_per_s": 90.0}
    record_export(package, "model.int8.onnx", {"fp32_accuracy": 0.9, "int8_accuracy": 0.9, **slower})
    assert Predictor.load(package).backend == "onnx"  # as accurate, but slower: not used
    record_export(package, "model.int8.onnx", {"fp32_accuracy": 0.9, "int8_accuracy": 0.897, **speed})
    assert Predictor.load(package).backend == "onnx-int8"
    # ONNX Runtime slower than PyTorch (3D convolutions on this CPU), int8 no faster than PyTorch: PyTorch
    record_export(package, "model.onnx", {**recorded, "torch_per_s": 200.0, "onnx_per_s": 140.0})
    assert Predictor.load(package).backend == "torch"
    record_export(package, "model.onnx", {**recorded, "torch_per_s": 50.0, "onnx_per_s": 100.0})
    (package / "model.int8.onnx").unlink()
    assert Predictor.load(package).backend == "onnx"
    with pytest.raises(ActiscopeError, match="--quantize int8"):
        Predictor.load(package, "onnx-int8")
    # New weights make every export stale: saving the package removes them, auto falls back to PyTorch.
    model, meta = load_package(package)
    save_package(model, package, class_names=meta.class_names)
    assert not (package / "model.onnx").exists() and Predictor.load(package).backend == "torch"


def test_onnx_export_matches_pytorch_and_backends_agree(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(trained_run), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "largest probability difference, PyTorch vs onnx" in out and "test images of the run" in out
    result = export(trained_run, "onnx")
    assert result.path == trained_run / "model" / "model.onnx" and result.max_prob_diff < 1e-4
    assert result.checked > 0

    images = sorted((trained_run.parent.parent / "data").rglob("*.png"))
    by_torch = Predictor.load(trained_run, "torch").predict(images)
    by_onnx = Predictor.load(trained_run, "onnx").predict(images, batch_size=7)  # dynamic batch size
    assert [p.label for p in by_torch] == [p.label for p in by_onnx]
    assert max(abs(a.confidence - b.confidence) for a, b in zip(by_torch, by_onnx, strict=True)) < 1e-4


def test_torchscript_export(trained_run: Path) -> None:
    result = export(trained_run, "torchscript")
    assert result.path.name == "model.torchscript.pt" and result.path.is_file()
    assert result.max_prob_diff is not None and result.max_prob_diff < 1e-5


def test_int8_reports_accuracy_and_speed(trained_run: Path) -> None:
    result = export(trained_run, "onnx", quantize="int8", calibration_images=16)
    report = result.int8
    assert report is not None and (trained_run / "model" / "model.int8.onnx").is_file()
    assert report["test_images"] > 0 and 0 <= report["int8_accuracy"] <= 1
    assert report["fp32_accuracy"] >= 0.9  # the colour task is learned; the report is about real numbers
    assert report["int8_images_per_s"] > 0


def test_export_errors(trained_run: Path) -> None:
    with pytest.raises(ExportError, match="works on the ONNX export"):
        export(trained_run, "torchscript", quantize="int8")
    with pytest.raises(ExportError, match="unknown export format"):
        export(trained_run, "tflite")
