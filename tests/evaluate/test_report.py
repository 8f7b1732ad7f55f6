from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from actiscope.cli import main
from actiscope.evaluate import plots
from actiscope.evaluate.report import EvaluationError, evaluate, read_predictions
from actiscope.package import load_package, read_meta, save_package
from actiscope.run import EvalDir, RunDir
from tests.conftest import truncated_jpeg, write_colour_classes


def test_evaluate_the_runs_test_split(trained_run: Path) -> None:
    result = evaluate(trained_run, backend="torch", workers=0)
    assert result.out == RunDir(trained_run).eval.path
    out = EvalDir(result.out)
    m = json.loads(out.metrics.read_text())
    # The same test images and preprocessing as training's own test step: the same accuracy.
    assert m["accuracy"] == pytest.approx(read_meta(trained_run).metrics["test_acc"], abs=1e-4)
    assert m["accuracy"] >= 0.9 and m["images"] == len(read_predictions(out.predictions)[0])
    assert m["data"].startswith("the run's test split") and m["unreadable"] == 0
    for name in EvalDir.PLOTS:
        with Image.open(out.plot(name)) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 250
            assert np.asarray(image.convert("L")).std() > 1  # something is drawn
    report = out.report.read_text()
    assert all(f"]({name})" in report for name in EvalDir.PLOTS)
    assert "| accuracy |" in report and "| red |" in report


def test_evaluate_other_data_lists_unknown_labels_and_unreadable_images(
    trained_run: Path, tmp_path: Path
) -> None:
    other = write_colour_classes(tmp_path / "other", per_class=4, start=7)
    truncated_jpeg(other / "red" / "broken.jpg")
    result = evaluate(trained_run, other, out=tmp_path / "eval", backend="torch", workers=0)
    m = result.metrics
    assert m["images"] == 12 and m["unreadable"] == 1
    assert m["unreadable_files"][0]["path"].endswith("broken.jpg")
    assert "broken.jpg" in (tmp_path / "eval" / "report.md").read_text()

    shutil.copytree(other / "blue", other / "purple")
    with pytest.raises(EvaluationError, match="label\\(s\\) the model does not know: purple"):
        evaluate(trained_run, other, backend="torch", workers=0)


def test_evaluate_cli_with_tta(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tta"
    assert main(["evaluate", str(trained_run), "--tta", "--out", str(out), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "flip TTA" in printed and str(out / "report.md") in printed
    assert json.loads((out / "metrics.json").read_text())["tta"] is True

    assert main(["evaluate", str(trained_run), "--split", "holdout"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--split 'holdout' is not one of" in err
    assert main(["evaluate", str(trained_run / "model" / "model.safetensors")]) == 2


def test_confusion_matrix_stays_readable_with_40_classes(tmp_path: Path) -> None:
    names = [f"action_number_{i}" for i in range(40)]
    matrix = np.random.default_rng(0).integers(0, 20, size=(40, 40))
    plots.plot_confusion(matrix, names, tmp_path / "cm.png")
    with Image.open(tmp_path / "cm.png") as image:
        assert image.width >= 2000 and image.height >= 1000  # grows with the classes


def test_report_names_the_starting_weights(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    model, meta = load_package(run)
    provenance = {
        "name": "imagenet",
        "source": "torchvision hub cache",
        "sha256": "3a48c2260dbe" + "0" * 52,
        "file": "/hub/checkpoints/mobilenet_v2-7ebf99e0.pth",
    }
    save_package(model, run / "model", class_names=meta.class_names, metrics=meta.metrics, weights=provenance)
    result = evaluate(run, backend="torch", workers=0)
    report = (result.out / "report.md").read_text()
    assert "- starting weights: imagenet (torchvision hub cache, sha256 3a48c2260dbe…)\n" in report
    assert result.metrics["model"]["weights"] == provenance
