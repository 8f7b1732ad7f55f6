from __future__ import annotations

import csv
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from actiscope.cli import main
from actiscope.data.config import DataConfig
from actiscope.data.images import is_image_path, load_image
from actiscope.data.transforms import eval_transform, preprocess
from actiscope.models.registry import create_model
from actiscope.package import save_package
from actiscope.predict import Predictor, decoded_batches
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


def test_predictor_applies_the_training_preprocessing(package: Path, folder: Path) -> None:
    predictor = Predictor.load(package)
    path = folder / "red" / "red_0.png"
    expected = eval_transform(DataConfig(32))(
        torch.from_numpy(preprocess(load_image(path), 32)).permute(2, 0, 1)
    )
    # The Predictor normalises numpy arrays, training normalises tensors: the same numbers.
    assert np.array_equal(predictor.pixels(path), expected.numpy())
    # Paths, PIL images and arrays of the same picture give the same answer.
    image = Image.open(path).convert("RGB")
    by_path, by_pil, by_array = predictor.predict([path, image, np.asarray(image)], top_k=3)
    assert by_path == by_pil == by_array
    assert len(by_path.top_k) == 3 and by_path.top_k[0] == (by_path.label, by_path.confidence)
    assert sum(p for _, p in by_path.top_k) == pytest.approx(1.0, abs=1e-5)
    assert [p for _, p in by_path.top_k] == sorted((p for _, p in by_path.top_k), reverse=True)


def test_predict_folder_to_csv_row_by_row(
    package: Path, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "predictions.csv"
    code = main(["predict", str(package), str(folder), "--out", str(out), "--top-k", "2", "--workers", "0"])
    assert code == 2  # two files failed: the exit status says how many
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["filename", "label", "confidence", "top2_label", "top2_confidence", "error"]
    by_name = {Path(r["filename"]).name: r for r in rows}
    assert len(rows) == 3 * 3 + 3  # 9 colour images, the nested one, the corrupt one, the fake one
    assert "notes.txt" not in by_name
    assert "truncated" in by_name["corrupt.jpg"]["error"] and not by_name["corrupt.jpg"]["label"]
    assert "not an image" in by_name["fake.jpg"]["error"]
    assert by_name["nested.png"]["label"] in COLOURS and not by_name["nested.png"]["error"]
    predictor = Predictor.load(package)
    for row in rows:
        if row["error"]:
            continue
        [expected] = predictor.predict([Path(row["filename"])], top_k=2)
        assert row["label"] == expected.label and float(row["confidence"]) == pytest.approx(
            expected.confidence, abs=1e-5
        )
        assert row["top2_label"] == expected.top_k[1][0]
    captured = capsys.readouterr()
    assert "10 images predicted, 2 failed" in captured.out and "Traceback" not in captured.err


def test_kaggle_testing_csv_and_submission_format(package: Path, tmp_path: Path) -> None:
    write_colour_classes(tmp_path / "flat", per_class=2)
    test_dir = tmp_path / "kaggle" / "test"
    test_dir.mkdir(parents=True)
    for i, src in enumerate(sorted((tmp_path / "flat").rglob("*.png"))):
        Image.open(src).save(test_dir / f"Image_{i + 1}.jpg")
    (tmp_path / "kaggle" / "Testing_set.csv").write_text(
        "filename\n" + "".join(f"Image_{i}.jpg\n" for i in range(1, 7)) + "Image_99.jpg\n"
    )
    out = tmp_path / "submission.csv"
    assert main(["predict", str(package), str(tmp_path / "kaggle" / "Testing_set.csv"), "--out", str(out),
                 "--format", "submission", "--workers", "0"]) == 1  # fmt: skip
    lines = out.read_text().splitlines()
    assert lines[0] == "filename,label"
    assert [line.split(",")[0] for line in lines[1:]] == [f"Image_{i}.jpg" for i in range(1, 7)] + [
        "Image_99.jpg"
    ]
    assert all(line.split(",")[1] in COLOURS for line in lines[1:7]) and lines[7] == "Image_99.jpg,"


@pytest.mark.parametrize("workers", ["0", "2"])
def test_interrupted_predict_leaves_no_partial_csv(
    package: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    from actiscope import predict as predict_module

    out = tmp_path / "predictions.csv"
    real = predict_module.Predictor.probabilities
    calls = []

    def interrupted(self: Predictor, batch: np.ndarray, **kw: bool) -> np.ndarray:
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, batch, **kw)

    monkeypatch.setattr(predict_module.Predictor, "probabilities", interrupted)
    argv = ["predict", str(package), str(folder), "--out", str(out), "--batch-size", "2", "--workers", workers]  # fmt: skip
    assert main(argv) == 130
    assert not out.exists() and not list(tmp_path.glob(".predictions*"))
    assert multiprocessing.active_children() == []  # the decoding processes were stopped


def test_bad_model_and_inputs_are_one_line_errors(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", str(tmp_path / "nope"), str(tmp_path)]) == 2
    assert "no such model package" in capsys.readouterr().err
    assert main(["predict", str(package), str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg: no such file or folder" in capsys.readouterr().err
    assert main(["predict", str(package), str(tmp_path), "--backend", "onnx"]) == 2
    assert "actiscope export" in capsys.readouterr().err


def _image_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_image_path(p))  # corrupt.jpg and fake.jpg included


def test_decoding_processes_give_what_decoding_here_gives(package: Path, folder: Path) -> None:
    pixels = Predictor.load(package).pixels
    paths = _image_paths(folder)
    # Batches of one: far more batches than shared slots, so a slot written again too early would show.
    here = list(decoded_batches(paths, pixels, batch_size=1, workers=0))
    there = list(decoded_batches(paths, pixels, batch_size=1, workers=2))
    assert [i for i, _, _ in there] == [[i] for i in range(len(paths))] == [i for i, _, _ in here]
    assert [e for _, _, e in there] == [e for _, _, e in here]
    errors = {i: e for _, _, batch_errors in there for i, e in batch_errors.items()}
    assert sorted(paths[i].name for i in errors) == ["corrupt.jpg", "fake.jpg"]
    expected = np.stack([pixels.pixels_uint8(p) for i, p in enumerate(paths) if i not in errors])
    assert np.array_equal(np.concatenate([x for _, x, _ in there]), expected)
    assert np.array_equal(np.concatenate([x for _, x, _ in here]), expected)
    assert multiprocessing.active_children() == []


def test_decoding_runs_at_most_two_batches_per_process_ahead(
    package: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[int] = []
    real = ProcessPoolExecutor.submit

    def counted(self: ProcessPoolExecutor, fn: object, *args: object) -> object:
        submitted.append(args[2])  # type: ignore[arg-type]
        return real(self, fn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ProcessPoolExecutor, "submit", counted)
    batches = decoded_batches(_image_paths(folder), Predictor.load(package).pixels, batch_size=1, workers=2)
    next(batches)
    assert submitted == [0, 1, 2, 3, 4]  # the batch taken and four ahead, not all twelve
    batches.close()
    assert multiprocessing.active_children() == []


def _die(*args: object) -> None:
    os._exit(1)  # a decoding process killed (the kernel's out-of-memory killer, say)


def test_a_decoding_process_that_dies_is_a_one_line_error(
    package: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from actiscope import predict as predict_module

    monkeypatch.setattr(predict_module, "_decode_in_slot", _die)
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(package), str(folder), "--out", str(out), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "a decoding process died" in err and "--workers 0" in err and "Traceback" not in err
    assert not out.exists()


def test_onnx_prediction_never_imports_torch(package: Path, folder: Path, tmp_path: Path) -> None:
    """torch's import is seconds of start-up: `actiscope predict` with an ONNX model goes without it."""
    from actiscope.export import export

    export(package, "onnx")
    out = tmp_path / "predictions.csv"
    argv = ["predict", str(package), str(folder), "--out", str(out), "--backend", "onnx", "--workers", "2"]
    script = f"import sys; from actiscope.cli import main; code = main({argv!r}); print(code, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "2 False"  # two unreadable files, and no torch
    with out.open() as fh:
        rows = {Path(r["filename"]).name: r for r in csv.DictReader(fh)}
    reference = Predictor.load(package, backend="torch")
    for name, row in rows.items():
        if not row["error"]:
            [expected] = reference.predict([Path(row["filename"])])
            assert row["label"] == expected.label, name
