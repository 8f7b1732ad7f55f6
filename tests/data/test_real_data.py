"""Integration on the real data in ../shared/data; skipped when it is absent."""

from __future__ import annotations

from pathlib import Path

from actiscope.data.formats import load_dataset
from actiscope.data.images import crop_box, load_image
from actiscope.data.inspect import inspect_dataset
from actiscope.data.split import make_split


def test_har15_dev300(shared_data: Path) -> None:
    ds = load_dataset(shared_data / "har15" / "labels-dev300.csv")
    assert ds.format == "csv" and len(ds.classes) == 15
    assert set(ds.class_counts().values()) == {20}
    report = inspect_dataset(ds)
    assert not report.unreadable and not report.missing and not report.label_typos
    assert not report.has_problems
    manifest = make_split(ds, val=0.15, test=0.15, seed=0)
    assert {c: n for c, n in manifest.counts()["test"].items()} == dict.fromkeys(ds.classes, 3)


def test_stanford40_sample_boxes_and_crops(shared_data: Path) -> None:
    ds = load_dataset(shared_data / "stanford40-sample")
    assert ds.format == "stanford40" and len(ds.samples) == 26 and len(ds.classes) == 9
    assert {s.split for s in ds.samples} == {"train", "test"}
    smaller = 0
    for sample in ds.samples:
        assert sample.box is not None
        full = load_image(sample.path)
        left, top, right, bottom = crop_box(sample.box, full.size, margin=0.1)
        assert 0 <= left < right <= full.width and 0 <= top < bottom <= full.height
        crop = load_image(sample.path, box=sample.box, margin=0.1)
        assert crop.size == (right - left, bottom - top)
        smaller += crop.width * crop.height < full.width * full.height
    assert smaller >= len(ds.samples) // 2  # most people do not fill their photo
