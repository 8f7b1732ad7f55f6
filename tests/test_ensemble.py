"""The ensemble as a model: `compare --ensemble K` leaves a package (package.save_ensemble) that predict,
evaluate, export and explain take like any other, whose predictions are the mean of its members'. The
comparison (tests.conftest.crop_comparison) trained its members on person crops, which the ensemble
carries."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from actiscope.cli import main
from actiscope.models.registry import create_model
from actiscope.package import (
    EnsembleInputError,
    PackageError,
    read_meta,
    save_ensemble,
    save_package,
)
from actiscope.predict import Predictor
from actiscope.run import CompareDir, RunDir
from tests.conftest import PERSON_BOX

pytest.importorskip("onnxruntime")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _images(comparison: Path) -> list[Path]:
    return sorted((comparison.parent.parent / "stanford" / "JPEGImages").glob("*.jpg"))


def _members_mean(comparison: Path, images: list[Path]) -> np.ndarray:
    """The mean of the members' probabilities on the person crops, each member loaded from its own run."""
    runs = [RunDir(p) for p in sorted(CompareDir(comparison).runs.iterdir())]
    per_member = []
    for run in runs:
        predictor = Predictor.load(run.path, "torch")
        pixels = np.stack([predictor.preprocess(p, PERSON_BOX) for p in images])
        per_member.append(predictor.probabilities(pixels))
    return np.mean(per_member, axis=0)


def test_compare_leaves_a_package_whose_predictions_are_the_mean_of_its_members(
    crop_comparison: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    comparison = CompareDir(crop_comparison)
    package = comparison.ensemble.model
    meta = read_meta(package)
    assert meta.is_ensemble and meta.architecture == "ensemble(simple-cnn+squeezenet1_1)"
    assert meta.person_crop == 0.1  # its members were trained on person crops: so is the ensemble
    for member, run in zip(meta.members, ("simple-cnn", "squeezenet1_1"), strict=True):
        copied = package / "members" / member / "model.safetensors"
        assert copied.read_bytes() == (comparison.run(run).model / "model.safetensors").read_bytes()

    # its row: measured on its own package, its cost next to its accuracy
    row = _rows(comparison.leaderboard)[-1]
    evaluation = json.loads(comparison.ensemble.eval.metrics.read_text())
    assert row["model"] == meta.architecture and row["rank"] == "" and row["backend"] == "torch"
    assert float(row["accuracy"]) == evaluation["accuracy"] == meta.metrics["test_acc"]
    assert float(row["infer_ms"]) > 0 and float(row["infer_ms"]) == meta.metrics["infer_ms"]
    assert evaluation["model"]["members"] == ["simple-cnn", "squeezenet1_1"]
    assert evaluation["person_boxes"] == {"cropped": 12, "whole": 0}  # evaluated on the XML's boxes
    assert "an ensemble: the mean of the probabilities of simple-cnn, squeezenet1_1" in (
        comparison.ensemble.eval.report.read_text()
    )
    assert "ensemble/model/" in comparison.leaderboard_md.read_text()

    images = _images(crop_comparison)[::3]
    expected = _members_mean(crop_comparison, images)
    out, boxes = tmp_path / "predictions.csv", tmp_path / "boxes.csv"
    boxes.write_text(
        "path,xmin,ymin,xmax,ymax\n" + "".join(f"{p},{','.join(map(str, PERSON_BOX))}\n" for p in images)
    )
    assert (
        main(
            [
                "predict",
                str(comparison.ensemble.path),
                *map(str, images),
                "--out",
                str(out),
                "--top-k",
                "2",
                "--backend",
                "torch",
                "--boxes",
                str(boxes),
            ]
        )
        == 0
    )
    names = meta.class_names
    for image, got, want in zip(images, _rows(out), expected, strict=True):
        assert got["filename"] == str(image) and got["label"] == names[int(want.argmax())]
        assert got["input"] == "person crop"
        for label, key in ((got["label"], "confidence"), (got["top2_label"], "top2_confidence")):
            assert float(got[key]) == pytest.approx(want[names.index(label)], abs=2e-6)
    ensemble = Predictor.load(package, "torch")
    probs = ensemble.probabilities(np.stack([ensemble.preprocess(p, PERSON_BOX) for p in images]))
    assert np.abs(probs - expected).max() < 1e-6


def test_an_ensemble_is_exported_to_one_onnx_graph(
    crop_comparison: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunDir(tmp_path / "ensemble")
    shutil.copytree(CompareDir(crop_comparison).ensemble.path, run.path)  # the export adds files
    assert main(["export", str(run.path), "--format", "onnx"]) == 0
    assert "test images of the run" in capsys.readouterr().out  # checked on its split's test images
    import onnx

    graph = onnx.load(str(run.model / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["pixels"] and len(graph.output) == 1  # one graph
    images = _images(crop_comparison)[::4]
    by_onnx = Predictor.load(run.path, "onnx")
    probs = by_onnx.probabilities(np.stack([by_onnx.preprocess(p, PERSON_BOX) for p in images]))
    assert np.abs(probs - _members_mean(crop_comparison, images)).max() < 1e-5
    assert Predictor.load(run.path).backend in ("onnx", "torch")  # auto goes by the measured rates


def _package(path: Path, classes: list[str], size: int = 32, crop: float | None = None) -> Path:
    torch.manual_seed(len(classes))
    save_package(
        create_model("simple-cnn", len(classes), image_size=size), path, class_names=classes, person_crop=crop
    )
    return path


def test_members_with_other_classes_or_inputs_are_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _package(tmp_path / "a", ["run", "sit", "walk"])
    other = _package(tmp_path / "b", ["run", "sit", "wave"])
    with pytest.raises(PackageError, match=r"has classes run, sit, wave and .* has run, sit, walk") as err:
        save_ensemble([a, other], tmp_path / "ens")
    assert "\n" not in str(err.value) and not (tmp_path / "ens" / "model.json").exists()
    with pytest.raises(EnsembleInputError, match=r"64 px.* 32 px.*--image-size"):
        save_ensemble([a, _package(tmp_path / "c", ["run", "sit", "walk"], size=64)], tmp_path / "ens")
    with pytest.raises(EnsembleInputError, match="person crops"):
        save_ensemble([a, _package(tmp_path / "d", ["run", "sit", "walk"], crop=0.1)], tmp_path / "ens")

    same = _package(tmp_path / "e", ["run", "sit", "walk"])
    save_ensemble([a, same], tmp_path / "ens")
    with pytest.raises(PackageError, match="is an ensemble itself"):
        save_ensemble([tmp_path / "ens", a], tmp_path / "ens2")
    # a member changed after the fact: the package is refused as a whole, in one line
    member = tmp_path / "ens" / "members" / read_meta(tmp_path / "ens").members[1] / "model.json"
    member.write_text(json.dumps({**json.loads(member.read_text()), "class_names": ["run", "sit", "wave"]}))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "ens"), str(tmp_path)]) == 2
    err_line = capsys.readouterr().err.strip()
    assert (
        "\n" not in err_line and "classes run, sit, wave and" in err_line and "has run, sit, walk" in err_line
    )
    shutil.rmtree(member.parent)
    with pytest.raises(PackageError, match=r"member .* is missing"):
        read_meta(tmp_path / "ens")


def test_an_ensemble_is_not_explained_as_one_model(tmp_path: Path) -> None:
    from actiscope.explain import ExplainError, explain
    from tests.conftest import write_image

    members = [_package(tmp_path / n, ["a", "b"]) for n in ("m1", "m2")]
    save_ensemble(members, tmp_path / "ens")
    with pytest.raises(ExplainError, match="ensemble of 2 models; Grad-CAM explains one model"):
        explain(tmp_path / "ens", write_image(tmp_path / "x.png", 1))


def test_members_with_different_inputs_are_reported_but_not_packaged(tmp_path: Path) -> None:
    from actiscope.evaluate.leaderboard import Row
    from actiscope.workflows import _ensemble

    comparison = CompareDir(tmp_path / "contest")
    rows = []
    # squeezenet alone gets x wrong; the mean of the two gets both right
    for name, size, (x, y) in (("simple-cnn", 32, (0.9, 0.3)), ("squeezenet1_1", 48, (0.4, 0.2))):
        run = comparison.run(name)
        _package(run.model, ["a", "b"], size=size)
        run.eval.path.mkdir(parents=True)
        run.eval.predictions.write_text(  # its test predictions, as evaluate writes them
            "filename,label,predicted,confidence,p_a,p_b\n"
            f"x.png,a,a,0.9,{x},{1 - x}\ny.png,b,b,0.8,{y},{1 - y}\n"
        )
        rows.append(Row(name, "done", params_m=1.0, gflops=0.5, infer_ms=2.5, train_s=3.0, run=str(run.path)))
    split = tmp_path / "split.json"
    split.write_text("{}")
    blend = _ensemble(rows, comparison, split, "none")
    assert blend is not None and blend.backend == "sum of members (not packaged)" and not blend.run
    assert blend.infer_ms == 5.0 and blend.accuracy == 1.0  # mean p(a): 0.65 on x, 0.25 on y
    assert not comparison.ensemble.path.exists()
