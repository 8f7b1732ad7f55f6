from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from actiscope.cli import main
from actiscope.data.formats import load_dataset
from actiscope.data.inspect import inspect_dataset, label_typos
from tests.conftest import noise_image, truncated_jpeg, write_class_folders, write_image


def broken_dataset(root: Path) -> None:
    """train/test class folders with every kind of trouble the issue lists."""
    write_class_folders(root / "train", {"running": 4, "sitting": 4})
    write_class_folders(root / "test", {"running": 2, "sitting": 2}, start=50)
    (root / "train" / "running" / "zero.jpg").write_bytes(b"")
    (root / "train" / "sitting" / "text.jpg").write_text("hello")
    truncated_jpeg(root / "train" / "sitting" / "cut.jpg")
    Image.new("CMYK", (30, 30), (10, 200, 30, 0)).save(root / "train" / "running" / "cmyk.jpg")
    # The same image in train and in test: leakage.
    (root / "test" / "running" / "leak.png").write_bytes(
        (root / "train" / "running" / "running_0.png").read_bytes()
    )


def test_inspect_reports_every_problem(tmp_path: Path) -> None:
    broken_dataset(tmp_path)
    report = inspect_dataset(load_dataset(tmp_path), workers=1)
    reasons = {Path(u["path"]).name: u["reason"] for u in report.unreadable}
    assert set(reasons) == {"zero.jpg", "text.jpg", "cut.jpg"}
    assert "empty" in reasons["zero.jpg"]
    assert "not an image" in reasons["text.jpg"]
    assert "truncated" in reasons["cut.jpg"]
    assert report.image_stats["modes"] == {"RGB": 13, "CMYK": 1}
    assert report.classes == {"running": 9, "sitting": 8}
    assert report.splits == {"train": 12, "test": 5}
    [leak] = report.leakage
    assert leak.kind == "exact" and leak.crosses_splits
    assert sorted(Path(f).name for f in leak.files) == ["leak.png", "running_0.png"]
    assert report.has_problems


def test_near_duplicate_found_and_lookalikes_not(tmp_path: Path) -> None:
    original = noise_image(7, size=(120, 90))
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
    original.save(tmp_path / "a" / "orig.png")
    # Resized and recompressed: other bytes, same picture, and filed under another label.
    original.resize((100, 75)).save(tmp_path / "b" / "copy.jpg", quality=80)
    for i in range(3):
        write_image(tmp_path / "a" / f"other{i}.png", 100 + i, size=(120, 90))
        write_image(tmp_path / "b" / f"other{i}.png", 200 + i, size=(120, 90))
    # Two different flat-background pictures: their dHashes agree but they are not duplicates.
    for cls, box in (("a", (50, 20, 80, 80)), ("b", (20, 40, 100, 70))):
        img = Image.new("RGB", (120, 90), (250, 250, 250))
        img.paste(noise_image(300, size=(box[2] - box[0], box[3] - box[1])), box[:2])
        img.save(tmp_path / cls / "studio.png")
    report = inspect_dataset(load_dataset(tmp_path), workers=1)
    assert len(report.duplicates) == 1
    group = report.duplicates[0]
    assert group.kind == "near" and group.conflicting_labels
    assert sorted(Path(f).name for f in group.files) == ["copy.jpg", "orig.png"]


def test_label_typos() -> None:
    found = label_typos(
        {"running": 40, "runing": 2, "sitting": 40, "Sitting": 1, "eating": 30, "dancing": 30}
    )
    pairs = {(t["label"], t["looks_like"]) for t in found}
    assert pairs == {("runing", "running"), ("Sitting", "sitting")}


def test_cli_inspect_writes_json_and_grid_and_exits_1_on_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken_dataset(tmp_path / "data")
    assert (
        main(["data", "inspect", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--workers", "1"])
        == 1
    )
    out = capsys.readouterr().out
    assert "3 unreadable files" in out and "cut.jpg: truncated" in out
    assert "1 duplicate groups that leak" in out
    saved = json.loads((tmp_path / "out" / "inspect.json").read_text())
    assert saved["format"] == "folder" and saved["leakage_groups"] == 1 and len(saved["unreadable"]) == 3
    grid = Image.open(tmp_path / "out" / "samples.png")
    assert grid.width > 300 and grid.height > 200


def test_cli_clean_dataset_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3})
    assert main(["data", "inspect", str(tmp_path)]) == 0
    assert "clean" in capsys.readouterr().out


def test_cli_csv_missing_rows_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "images" / "x.png", 1)
    (tmp_path / "labels.csv").write_text("filename,label\nx.png,a\ny.png,b\n")
    assert main(["data", "inspect", str(tmp_path)]) == 1
    assert "row 3: y.png" in capsys.readouterr().out


def test_cli_usage_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "inspect", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file or folder" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "inspect", str(tmp_path), "--format", "nope"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
