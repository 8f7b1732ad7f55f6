from __future__ import annotations

from pathlib import Path

import pytest

from actiscope.cli import main
from actiscope.data.formats import load_dataset
from actiscope.data.scan import connected_groups
from actiscope.data.split import SplitManifest, make_split
from actiscope.errors import DataError
from tests.conftest import noise_image, write_class_folders, write_image


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


def grouped_dataset(root: Path) -> Path:
    """Three classes with every way files are tied together: exact copies, a near copy (resized, other
    bytes) with an exact copy of its own, and UCF-named recordings that a copied file ties together."""
    write_class_folders(root, {"a": 8, "b": 8, "c": 8})
    for i in range(2):
        (root / "a" / f"copy{i}.png").write_bytes((root / "a" / "a_0.png").read_bytes())
    photo = noise_image(7, size=(120, 90))
    photo.save(root / "b" / "orig.png")
    photo.resize((100, 75)).save(root / "b" / "near.jpg", quality=80)
    (root / "b" / "near_copy.jpg").write_bytes((root / "b" / "near.jpg").read_bytes())
    for group in range(1, 4):
        for clip in range(1, 3):
            write_image(root / "c" / f"v_Jump_g{group:02d}_c{clip:02d}.png", 300 + 10 * group + clip)
    (root / "c" / "v_Jump_g02_c03.png").write_bytes((root / "c" / "v_Jump_g01_c01.png").read_bytes())
    return root


# Made by the union-find grouping that connected_groups replaced: the same data must give the same split.
EXPECTED_SPLITS = {
    0: {
        "train": "a/a_0.png a/a_3.png a/a_6.png a/a_7.png a/copy0.png a/copy1.png b/b_1.png b/b_2.png "
        "b/b_3.png b/b_4.png b/b_6.png b/b_7.png c/c_1.png c/c_2.png c/c_4.png c/v_Jump_g03_c01.png "
        "c/v_Jump_g03_c02.png",
        "val": "a/a_4.png a/a_5.png b/near.jpg b/near_copy.jpg b/orig.png c/c_3.png c/c_5.png c/c_6.png",
        "test": "a/a_1.png a/a_2.png b/b_0.png b/b_5.png c/c_0.png c/c_7.png c/v_Jump_g01_c01.png "
        "c/v_Jump_g01_c02.png c/v_Jump_g02_c01.png c/v_Jump_g02_c02.png c/v_Jump_g02_c03.png",
    },
    1: {
        "train": "a/a_0.png a/a_2.png a/a_4.png a/a_7.png a/copy0.png a/copy1.png b/b_0.png b/b_1.png "
        "b/b_6.png b/b_7.png b/near.jpg b/near_copy.jpg b/orig.png c/c_0.png c/c_2.png c/c_5.png "
        "c/c_6.png c/c_7.png",
        "val": "a/a_1.png a/a_3.png b/b_2.png b/b_4.png c/v_Jump_g01_c01.png c/v_Jump_g01_c02.png "
        "c/v_Jump_g02_c01.png c/v_Jump_g02_c02.png c/v_Jump_g02_c03.png c/v_Jump_g03_c01.png "
        "c/v_Jump_g03_c02.png",
        "test": "a/a_5.png a/a_6.png b/b_3.png b/b_5.png c/c_1.png c/c_3.png c/c_4.png",
    },
}


@pytest.mark.parametrize("seed", sorted(EXPECTED_SPLITS))
def test_the_same_data_gives_the_same_manifest(tmp_path: Path, seed: int) -> None:
    manifest = make_split(load_dataset(grouped_dataset(tmp_path)), val=0.2, test=0.2, seed=seed, workers=1)
    got = {s: " ".join(e.path for e in manifest.entries if e.split == s) for s in ("train", "val", "test")}
    assert got == EXPECTED_SPLITS[seed]


def test_connected_groups_merge_what_shares_a_member() -> None:
    # 0-3 and 3-5 chain into one group; a group of three; 4 and 7 stand alone; duplicates and
    # self-links change nothing
    assert connected_groups(8, [(0, 3), (5, 3), (1, 6, 2), (2, 6), (4, 4)]) == [
        [0, 3, 5],
        [1, 2, 6],
        [4],
        [7],
    ]
    assert connected_groups(3, []) == [[0], [1], [2]]
    assert connected_groups(0, []) == []
