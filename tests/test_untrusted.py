"""A run folder or model package from someone else: `predict` and `evaluate` never run code from it (nothing
on their paths unpickles), and a damaged or tampered one is one line. (`train --resume`: tests/engine/
test_faults.py; `serve`: tests/web/test_untrusted_web.py.)"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch

from actiscope.cli import main
from tests.faults import code_marker, handed_over, no_unpickling, plant_code


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_planted_file_runs_code_when_unpickled(tmp_path: Path, how: str) -> None:
    """What the tests below plant would run code if anything unpickled it (else they would prove nothing)."""
    marker, planted = tmp_path / "code-ran", tmp_path / "planted"
    plant_code(planted, marker, how)
    if how == "torch.save":
        torch.load(planted, weights_only=False)
    else:
        pickle.loads(planted.read_bytes())
    assert marker.is_file()


def test_predict_and_evaluate_read_no_pickle_from_a_run_folder(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = code_marker(tmp_path, monkeypatch)
    run = handed_over(trained_run, tmp_path / "handed-over", marker)
    no_unpickling(monkeypatch)
    image = next((trained_run.parent.parent / "data" / "red").iterdir())
    for backend in ("auto", "torch", "onnx", "onnx-int8"):
        assert main(["predict", str(run), str(image), "--backend", backend, "--workers", "0"]) == 0, backend
        assert "red" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--workers", "0"]) == 0
    assert (run / "eval" / "metrics.json").is_file()
    assert not marker.exists()


def _edit_safetensors_header(weights: Path) -> None:
    """One tensor's dtype changed in the header (same length, so the file still parses as far as that)."""
    raw = weights.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = raw[8 : 8 + length].decode()
    assert '"F32"' in header
    weights.write_bytes(raw[:8] + header.replace('"F32"', '"I32"', 1).encode() + raw[8 + length :])


# What was done to the package -> what the one line says.
DAMAGE = {
    "code as model.safetensors": "model.safetensors: cannot read the weights",
    "code as model.onnx": "model.onnx: not a usable ONNX model",
    "truncated model.safetensors": "model.safetensors: cannot read the weights",
    "edited safetensors header": "is torch.int32, not torch.float32: the file is damaged or edited",
    "onnx of another model": "model.onnx does not match model.json",
    "model.json not JSON": "model.json: unreadable",
    "model.json with one class name too few": "does not match model.json (simple-cnn, 2 classes)",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_or_tampered_package_is_one_line(
    trained_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damage: str,
) -> None:
    marker = code_marker(tmp_path, monkeypatch)
    package = Path(shutil.copytree(trained_run / "model", tmp_path / "package"))
    weights, onnx, meta = package / "model.safetensors", package / "model.onnx", package / "model.json"
    if damage == "code as model.safetensors":
        plant_code(weights, marker)
    elif damage == "code as model.onnx":
        plant_code(onnx, marker, "pickle")
    elif damage == "truncated model.safetensors":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "edited safetensors header":
        _edit_safetensors_header(weights)
    elif damage == "onnx of another model":
        _another_models_onnx(onnx)
    elif damage == "model.json not JSON":
        meta.write_text("{not json")
    else:
        described = json.loads(meta.read_text())
        meta.write_text(json.dumps({**described, "class_names": described["class_names"][:2]}))
    backend = "onnx" if "onnx" in damage else "torch"
    image = next((trained_run.parent.parent / "data" / "red").iterdir())
    assert main(["predict", str(package), str(image), "--backend", backend, "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("actiscope: error: ") and DAMAGE[damage] in err, err
    assert not marker.exists()


def _another_models_onnx(path: Path) -> None:
    from actiscope.models.registry import create_model

    other = create_model("simple-cnn", 5, image_size=32).eval()
    torch.onnx.export(
        other,
        (torch.zeros(2, 3, 32, 32),),
        str(path),
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
