from __future__ import annotations

import csv
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from actiscope.cli import main
from actiscope.predict import Predictor, collect_inputs, predict_rows
from tests.conftest import COLOURS, write_colour_classes


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
    argv = ["predict", str(package), str(tmp_path / "kaggle" / "Testing_set.csv"), "--out", str(out)]
    assert main([*argv, "--format", "submission", "--workers", "0"]) == 1
    lines = out.read_text().splitlines()
    assert lines[0] == "filename,label"
    assert [line.split(",")[0] for line in lines[1:]] == [f"Image_{i}.jpg" for i in range(1, 7)] + [
        "Image_99.jpg"
    ]
    assert all(line.split(",")[1] in COLOURS for line in lines[1:7]) and lines[7] == "Image_99.jpg,"


def test_list_files_and_progress(package: Path, folder: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'red' / 'red_0.png'}\n\nimages/green/green_1.png\nnowhere.png\n")
    files, skipped = collect_inputs([listing])
    assert skipped == [] and [f.name for f in files] == [
        str(folder / "red" / "red_0.png"),
        "images/green/green_1.png",
        "nowhere.png",
    ]
    assert [f.error for f in files] == [None, None, "file not found"]

    class Counter:
        done = 0.0

        def update(self, n: float = 1, /) -> None:
            self.done += n

    progress = Counter()
    rows = predict_rows(Predictor.load(package), files, top_k=1, workers=0, progress=progress)
    assert [r["filename"] for r in rows] == [f.name for f in files] and progress.done == 2  # the two read
    assert rows[2] == {"filename": "nowhere.png", "error": "file not found"}
    assert set(rows[0]) == {"filename", "label", "confidence"}


@pytest.mark.parametrize("workers", ["0", "2"])
def test_interrupted_predict_leaves_no_partial_csv(
    package: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    out = tmp_path / "predictions.csv"
    real = Predictor.probabilities
    calls = []

    def interrupted(self: Predictor, batch: np.ndarray, **kw: bool) -> np.ndarray:
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, batch, **kw)

    monkeypatch.setattr(Predictor, "probabilities", interrupted)
    argv = [
        "predict",
        str(package),
        str(folder),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--workers",
        workers,
    ]
    assert main(argv) == 130
    assert not out.exists() and not list(tmp_path.glob(".predictions*"))
    assert multiprocessing.active_children() == []  # the decoding processes were stopped
