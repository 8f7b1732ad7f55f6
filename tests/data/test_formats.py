from __future__ import annotations

from pathlib import Path

import pytest

from actiscope.data.formats import detect_format, load_dataset, read_person_box
from actiscope.errors import DataError
from tests.conftest import write_class_folders, write_image


def test_class_folders(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"running": 3, "sitting": 2})
    (tmp_path / "running" / "notes.txt").write_text("not an image")
    ds = load_dataset(tmp_path)
    assert (ds.format, ds.kind) == ("folder", "image")
    assert ds.class_counts() == {"running": 3, "sitting": 2}
    assert not ds.predefined_split
    assert [p.name for p in ds.ignored] == ["notes.txt"]


def test_split_folders_define_the_split(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "train", {"a": 3, "b": 3})
    write_class_folders(tmp_path / "valid", {"a": 1, "b": 1}, start=100)
    write_class_folders(tmp_path / "test", {"a": 2, "b": 2}, start=200)
    ds = load_dataset(tmp_path)
    assert ds.format == "folder"
    splits = sorted({s.split for s in ds.samples})
    assert splits == ["test", "train", "val"]
    assert sum(s.split == "test" for s in ds.samples) == 4


def test_detection_and_reading_see_the_same_class_folders(tmp_path: Path) -> None:
    """Hidden folders are skipped and split folders named canonically, when detecting and reading."""
    write_class_folders(tmp_path / "Training", {"a": 2, "b": 1})
    write_class_folders(tmp_path / "validation", {"a": 1}, start=10)
    write_class_folders(tmp_path / "Training" / ".thumbs", {"x": 3}, start=20)
    write_class_folders(tmp_path / ".cache", {"y": 3}, start=30)
    (tmp_path / "validation" / "clips").mkdir()
    (tmp_path / "validation" / "clips" / "v.avi").write_bytes(b"")
    assert detect_format(tmp_path) == "folder"  # 4 images outvote 1 clip; the hidden ones do not count
    ds = load_dataset(tmp_path)
    assert sorted((s.split, s.label, s.path.name) for s in ds.samples) == [
        ("train", "a", "a_0.png"),
        ("train", "a", "a_1.png"),
        ("train", "b", "b_0.png"),
        ("val", "a", "a_0.png"),
    ]
    assert [p.name for p in ds.ignored] == ["v.avi"]
    assert ds.notes == ["split defined by folders: Training, validation"]
    with pytest.raises(DataError, match="the video-folder layout needs a directory"):
        load_dataset(tmp_path / "validation" / "a" / "a_0.png", format="video-folder")


def test_kaggle_csv_with_foreign_absolute_paths(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(3):
        write_image(tmp_path / "train" / f"Image_{i}.jpg", i)
        write_image(tmp_path / "test" / f"Image_{i}.jpg", 100 + i)
    (tmp_path / "Training_set.csv").write_text(
        "filename,label\n"
        "Image_0.jpg,running\n"
        "C:\\Users\\someone\\HAR\\train\\Image_1.jpg,sitting\n"
        "/home/other/data/train/Image_2.jpg,running\n"
        "Image_9.jpg,running\n"
    )
    (tmp_path / "Testing_set.csv").write_text("filename\nImage_0.jpg\nImage_1.jpg\n")
    with caplog.at_level("INFO"):
        ds = load_dataset(tmp_path / "Training_set.csv")
    assert [s.path for s in ds.samples] == [tmp_path / "train" / f"Image_{i}.jpg" for i in range(3)]
    assert [s.label for s in ds.samples] == ["running", "sitting", "running"]
    assert [(m.row, m.filename) for m in ds.missing] == [(5, "Image_9.jpg")]
    assert sum("resolved by base name" in r.message for r in caplog.records) == 1
    assert any("2 filenames" in n for n in ds.notes)

    unlabelled = load_dataset(tmp_path / "Testing_set.csv")
    assert not unlabelled.labelled
    # Testing_set.csv must read test/, not the train/ image of the same name.
    assert [s.path.parent.name for s in unlabelled.samples] == ["test", "test"]


def test_csv_folder_with_several_csvs_needs_a_choice(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("filename,label\n")
    (tmp_path / "b.csv").write_text("filename,label\n")
    with pytest.raises(DataError, match=r"several CSV files \(a.csv, b.csv\)"):
        load_dataset(tmp_path)


def test_csv_without_filename_column(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("name,label\nfoo.jpg,a\n")
    with pytest.raises(DataError, match="no filename column"):
        load_dataset(tmp_path / "x.csv")


def test_stanford40_layout(tmp_path: Path) -> None:
    splits = tmp_path / "ImageSplits"
    splits.mkdir()
    (splits / "actions.txt").write_text("action_name\tnumber_of_images\nclimbing\t2\nwaving_hands\t2\n")
    (splits / "climbing_train.txt").write_text("climbing_001.jpg\n")
    (splits / "climbing_test.txt").write_text("climbing_002.jpg\n")
    (splits / "waving_hands_train.txt").write_text("waving_hands_001.jpg\n")
    (splits / "waving_hands_test.txt").write_text("waving_hands_002.jpg\nwaving_hands_404.jpg\n")
    xml = tmp_path / "XMLAnnotations"
    xml.mkdir()
    for name in ("climbing_001", "climbing_002", "waving_hands_001", "waving_hands_002"):
        write_image(tmp_path / "JPEGImages" / f"{name}.jpg", hash(name) % 1000, size=(60, 50))
        (xml / f"{name}.xml").write_text(
            "<annotation><object><name>person</name><bndbox><xmax>50</xmax><xmin>5</xmin>"
            "<ymax>45</ymax><ymin>8</ymin></bndbox></object></annotation>"
        )
    ds = load_dataset(tmp_path)
    assert ds.format == "stanford40"
    assert ds.class_counts() == {"climbing": 2, "waving_hands": 2}
    assert {(s.path.name, s.split) for s in ds.samples if s.label == "climbing"} == {
        ("climbing_001.jpg", "train"),
        ("climbing_002.jpg", "test"),
    }
    assert all(s.box == (5.0, 8.0, 50.0, 45.0) for s in ds.samples)
    assert [m.filename for m in ds.missing] == ["waving_hands_test.txt: waving_hands_404.jpg"]


def test_person_box_missing_or_broken(tmp_path: Path) -> None:
    assert read_person_box(tmp_path / "none.xml") is None
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation><object>")
    assert read_person_box(bad) is None


def test_video_folders_are_detected_and_counted(tmp_path: Path) -> None:
    for cls, n in {"Basketball": 3, "Biking": 2}.items():
        for i in range(n):
            path = tmp_path / cls / f"v_{cls}_g0{i}_c01.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x00" * 10)
    assert detect_format(tmp_path) == "video-folder"
    ds = load_dataset(tmp_path)
    assert ds.kind == "video"
    assert ds.class_counts() == {"Basketball": 3, "Biking": 2}


def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no dataset layout recognised"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DataError, match="unknown dataset format 'coco'"):
        load_dataset(tmp_path, "coco")
