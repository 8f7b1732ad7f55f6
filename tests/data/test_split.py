from __future__ import annotations

from pathlib import Path

import pytest

from actiscope.cli import main
from actiscope.data.formats import load_dataset
from actiscope.data.split import SplitManifest, make_split
from actiscope.errors import DataError
from tests.conftest import write_class_folders


def test_stratified_and_reproducible(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 20, "b": 20, "c": 40})
    ds = load_dataset(tmp_path)
    first = make_split(ds, val=0.15, test=0.15, seed=0, workers=1)
    counts = first.counts()
    assert counts["test"] == {"a": 3, "b": 3, "c": 6}
    assert counts["val"] == {"a": 3, "b": 3, "c": 6}
    assert counts["train"] == {"a": 14, "b": 14, "c": 28}
    assert make_split(ds, seed=0, workers=1).entries == first.entries
    assert make_split(ds, seed=1, workers=1).entries != first.entries


def test_duplicate_groups_stay_in_one_split(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 10, "b": 10})
    for i in range(4):  # four copies of one image
        (tmp_path / "a" / f"copy{i}.png").write_bytes((tmp_path / "a" / "a_0.png").read_bytes())
    ds = load_dataset(tmp_path)
    for seed in range(5):
        manifest = make_split(ds, val=0.2, test=0.2, seed=seed, workers=1)
        splits = {e.split for e in manifest.entries if e.path.startswith("a/copy") or e.path == "a/a_0.png"}
        assert len(splits) == 1


def test_unreadable_files_are_dropped_with_reason(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 6, "b": 6})
    (tmp_path / "a" / "broken.jpg").write_bytes(b"junk")
    manifest = make_split(load_dataset(tmp_path), workers=1)
    assert [Path(d["path"]).name for d in manifest.dropped] == ["broken.jpg"]
    assert all("broken" not in e.path for e in manifest.entries)
    assert len(manifest.entries) == 12


def test_predefined_split_kept_val_carved_and_leaks_dropped(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "train", {"a": 10, "b": 10})
    write_class_folders(tmp_path / "test", {"a": 3, "b": 3}, start=100)
    (tmp_path / "train" / "b" / "leak.png").write_bytes((tmp_path / "test" / "b" / "b_0.png").read_bytes())
    manifest = make_split(load_dataset(tmp_path), val=0.2, workers=1)
    counts = manifest.counts()
    assert counts["test"] == {"a": 3, "b": 3}
    assert counts["val"] == {"a": 2, "b": 2}
    assert counts["train"] == {"a": 8, "b": 8}
    assert manifest.dropped == [
        {
            "path": str(tmp_path / "train" / "b" / "leak.png"),
            "reason": f"duplicate of test image {tmp_path / 'test' / 'b' / 'b_0.png'}",
        }
    ]


def test_too_small_class_and_bad_ratios(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 10, "tiny": 2})
    ds = load_dataset(tmp_path)
    with pytest.raises(DataError, match="class 'tiny' has 2 usable image"):
        make_split(ds, workers=1)
    with pytest.raises(DataError, match="leaves nothing to train on"):
        make_split(ds, val=0.5, test=0.5)
    with pytest.raises(DataError, match=r"--val -0\.1"):
        make_split(ds, val=-0.1)


def test_manifest_roundtrip_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_class_folders(tmp_path / "data", {"a": 10, "b": 10})
    out = tmp_path / "split.json"
    assert main(["data", "split", str(tmp_path / "data"), "--out", str(out), "--seed", "3"]) == 0
    assert "train 12, val 4, test 4 (2 classes)" in capsys.readouterr().out
    manifest = SplitManifest.load(out)
    assert manifest.seed == 3 and manifest.classes == ["a", "b"]
    test_samples = manifest.samples("test")
    assert len(test_samples) == 4 and all(s.path.is_file() for s in test_samples)
    out.write_text("{not json")
    with pytest.raises(DataError, match="not a valid split manifest"):
        SplitManifest.load(out)
