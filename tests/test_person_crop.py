"""Stanford 40's person box everywhere: training records the crop in model.json, and evaluate (the data's
XML boxes), predict (--boxes) and the Predictor give a crop model its crops, and say so where no box is
known. The data is tests.conftest's tiny Stanford 40 layout (VOC-style XML), where the person's colour is
the class and the background is the other class's colour: only a crop shows the class."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from actiscope.cli import main
from actiscope.data.config import DataConfig
from actiscope.data.formats import load_dataset
from actiscope.data.images import load_image
from actiscope.evaluate.report import evaluate
from actiscope.models.registry import create_model
from actiscope.package import read_meta, save_package
from actiscope.predict import Predictor
from actiscope.run import CompareDir
from tests.conftest import PERSON_BOX as BOX
from tests.conftest import write_stanford40


@pytest.fixture
def crop_run(crop_comparison: Path) -> Path:
    """simple-cnn trained with --crop-person (by compare) on tests.conftest's Stanford 40 layout."""
    return CompareDir(crop_comparison).run("simple-cnn").path


def _data(crop_run: Path) -> Path:
    return crop_run.parents[3] / "stanford"


def test_the_crop_is_recorded_and_evaluate_uses_the_datas_boxes(crop_run: Path, tmp_path: Path) -> None:
    assert read_meta(crop_run).person_crop == 0.1  # --crop-margin's default
    # the run's test split, boxes from the XML (into a folder of its own: the run is shared)
    cropped = evaluate(crop_run, out=tmp_path / "cropped", workers=0, backend="torch")
    assert cropped.metrics["person_boxes"] == {"cropped": 12, "whole": 0}
    assert cropped.metrics["model"]["person_crop"] == 0.1 and cropped.metrics["accuracy"] >= 0.9
    assert (
        "person crops (margin 0.1), from the data's boxes for 12 images"
        in (cropped.out / "report.md").read_text()
    )

    # The same photos without their annotations: given whole, the model sees the background's colour.
    data = tmp_path / "no-boxes"
    shutil.copytree(_data(crop_run), data)
    for xml in sorted((data / "XMLAnnotations").glob("*_01[4-6].xml")):
        xml.unlink()  # 3 of each class's 6 test images
    half = evaluate(crop_run, data, out=tmp_path / "eval", workers=0, backend="torch")
    assert half.metrics["person_boxes"] == {"cropped": 6, "whole": 6}
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "6 had no person box and were given whole (the model expects a crop)" in report
    whole = [i for i, f in enumerate(half.files) if not (data / "XMLAnnotations" / f"{f.stem}.xml").exists()]
    assert half.y_true is not None and half.probs is not None
    correct = half.probs.argmax(1) == half.y_true
    assert correct[whole].mean() <= 0.5 < correct[[i for i in range(12) if i not in whole]].mean()


def test_predict_crops_to_the_boxes_csv_and_says_which_were_whole(
    crop_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    test = [s for s in load_dataset(_data(crop_run)).samples if s.split == "test"]
    boxes = tmp_path / "boxes.csv"
    with boxes.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "xmin", "ymin", "xmax", "ymax"])
        for s in test[::2]:  # every other image has a box; paths relative to the CSV
            assert s.box is not None
            writer.writerow([Path("..") / s.path.relative_to(tmp_path.parent), *s.box])
    out = tmp_path / "predictions.csv"
    paths = [str(s.path) for s in test]
    assert (
        main(
            ["predict", str(crop_run), *paths, "--boxes", str(boxes), "--out", str(out), "--backend", "torch"]
        )
        == 0
    )
    summary = capsys.readouterr().out
    assert f"6 cropped to their box in {boxes}; 6 without a box there: the whole image was used" in summary
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    predictor = Predictor.load(crop_run, "torch")
    for i, (row, sample) in enumerate(zip(rows, test, strict=True)):
        boxed = i % 2 == 0
        assert row["input"] == ("person crop" if boxed else "whole image (no box known)")
        given = load_image(sample.path, box=sample.box, margin=0.1) if boxed else load_image(sample.path)
        expected = predictor.predict([given])[0]
        assert row["label"] == expected.label
        assert float(row["confidence"]) == pytest.approx(expected.confidence, abs=2e-6)
    assert sum(r["label"] == s.label for r, s in zip(rows[::2], test[::2], strict=True)) >= 5

    assert main(["predict", str(crop_run), *paths[:2], "--backend", "torch"]) == 0
    assert "no --boxes were given: the whole image was used for all 2 images" in capsys.readouterr().out


def test_boxes_csv_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    for name, crop in (("crop", 0.2), ("whole", None)):
        save_package(
            create_model("simple-cnn", 2, image_size=32),
            tmp_path / name,
            class_names=["a", "b"],
            person_crop=crop,
        )
    image = tmp_path / "x.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    cases = {
        "path,x,y\nx.png,1,2\n": "no xmin, ymin, xmax, ymax column(s)",
        "path,xmin,ymin,xmax,ymax\nx.png,1,2,three,4\n": "boxes.csv:2: xmin, ymin, xmax and ymax must be numbers",
        "path,xmin,ymin,xmax,ymax\nx.png,10,2,5,4\n": "boxes.csv:2: a box needs xmin < xmax",
        "path,xmin,ymin,xmax,ymax\nx.png,1,2,5,4\nx.png,1,2,6,4\n": "boxes.csv:3: x.png has a box already",
    }
    for text, message in cases.items():
        (tmp_path / "boxes.csv").write_text(text)
        assert (
            main(["predict", str(tmp_path / "crop"), str(image), "--boxes", str(tmp_path / "boxes.csv")]) == 2
        )
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    (tmp_path / "boxes.csv").write_text("path,xmin,ymin,xmax,ymax\nx.png,1,2,5,4\n")
    assert main(["predict", str(tmp_path / "whole"), str(image), "--boxes", str(tmp_path / "boxes.csv")]) == 2
    assert "was trained on whole images" in capsys.readouterr().err


def test_a_box_changes_only_what_a_crop_model_is_given(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("simple-cnn", 2, image_size=32)
    save_package(model, tmp_path / "crop", class_names=["a", "b"], person_crop=0.25)
    save_package(model, tmp_path / "whole", class_names=["a", "b"])
    photo = write_stanford40(tmp_path / "s", train=1, test=0) / "JPEGImages" / "red_000.jpg"
    crop, whole = Predictor.load(tmp_path / "crop", "torch"), Predictor.load(tmp_path / "whole", "torch")
    as_crop = crop.preprocess.pixels_uint8(photo, BOX)
    expected = np.asarray(load_image(photo, box=BOX, margin=0.25).resize((32, 32), Image.Resampling.BILINEAR))
    assert np.array_equal(as_crop, expected.transpose(2, 0, 1))
    assert np.array_equal(
        crop.preprocess.pixels_uint8(load_image(photo), BOX), as_crop
    )  # a picture in memory
    assert np.array_equal(whole.preprocess.pixels_uint8(photo, BOX), whole.preprocess.pixels_uint8(photo))
    # the decoding pool crops as the in-process path does
    [(_, probs, error)] = list(crop.file_probabilities([photo], boxes=[BOX], workers=1))
    assert error is None and probs is not None
    assert np.allclose(probs, crop.probabilities(crop.preprocess(photo, BOX)[None])[0], atol=1e-6)
    assert crop.predict([photo], boxes=[BOX])[0].confidence == pytest.approx(float(probs.max()), abs=1e-6)


def test_training_without_boxes_records_no_crop(colour_data: Path) -> None:
    from actiscope.data.datamodule import ActionDataModule
    from actiscope.data.split import make_split

    manifest = make_split(load_dataset(colour_data), val=0.2, test=0.2, seed=0)
    assert ActionDataModule(manifest, DataConfig(32), crop_margin=0.1).person_crop is None  # no boxes
    assert ActionDataModule(manifest, DataConfig(32)).person_crop is None


def test_old_packages_load_as_no_crop_and_the_field_is_checked(tmp_path: Path) -> None:
    save_package(create_model("simple-cnn", 2, image_size=32), tmp_path / "p", class_names=["a", "b"])
    path = tmp_path / "p" / "model.json"
    meta = json.loads(path.read_text())
    assert meta["person_crop"] is None and meta["members"] == [] and meta["package_format"] == 2
    old = {k: v for k, v in meta.items() if k not in ("person_crop", "members")} | {"package_format": 1}
    path.write_text(json.dumps(old))
    loaded = read_meta(tmp_path / "p")
    assert loaded.person_crop is None and not loaded.is_ensemble and Predictor.load(tmp_path / "p", "torch")
    for bad in (True, "0.1", -0.1, float("nan")):
        path.write_text(json.dumps({**meta, "person_crop": bad}))
        with pytest.raises(Exception, match="person_crop must be null"):
            read_meta(tmp_path / "p")
    path.write_text(json.dumps({**meta, "members": ["../elsewhere"]}))
    with pytest.raises(Exception, match="members must be a list of folder names"):
        read_meta(tmp_path / "p")
    path.write_text(json.dumps({**meta, "package_format": 3}))
    with pytest.raises(Exception, match="package format 3 is newer"):
        read_meta(tmp_path / "p")


def test_stanford40_sample_photos_are_given_as_their_person_crops(shared_data: Path, tmp_path: Path) -> None:
    dataset = load_dataset(shared_data / "stanford40-sample")
    torch.manual_seed(0)
    save_package(
        create_model("simple-cnn", len(dataset.classes), image_size=32),
        tmp_path / "m",
        class_names=dataset.classes,
        person_crop=0.1,
    )
    predictor = Predictor.load(tmp_path / "m", "torch")
    samples = [s for s in dataset.samples if s.split == "test"][:4]
    paths, boxes = [s.path for s in samples], [s.box for s in samples]
    assert all(boxes) and all(predictor.preprocess.crops(b) for b in boxes)
    decoded = list(predictor.file_probabilities(paths, boxes=boxes, workers=0))
    crops = [load_image(s.path, box=s.box, margin=0.1) for s in samples]
    expected = predictor.probabilities(np.stack([predictor.preprocess(c) for c in crops]))
    given = [p for _, p, _ in decoded if p is not None]
    assert len(given) == len(samples) and np.allclose(np.stack(given), expected, atol=1e-6)
