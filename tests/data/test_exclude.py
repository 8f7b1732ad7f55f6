"""`--exclude FILE`: the audit's CSV as a reviewer edited it, or a plain list of paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from actiscope.data.exclude import ExcludeError, read_exclusions, without
from actiscope.data.formats import load_dataset
from tests.conftest import write_class_folders


def test_the_reviewed_csv_excludes_only_rows_marked_yes(tmp_path: Path) -> None:
    files = write_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    table = tmp_path / "audit.csv"
    table.write_text(
        f"rank,file,given,suggested,exclude\n1,{files[0]},a,b,yes\n2,{files[1]},a,b,no\n3,{files[4]},b,a,YES\n"
    )
    assert read_exclusions(table) == {files[0].resolve(), files[4].resolve()}
    dataset = without(load_dataset(tmp_path / "data"), read_exclusions(table))
    assert len(dataset.samples) == 4 and files[0] not in [s.path for s in dataset.samples]
    assert "2 file(s) excluded by --exclude" in dataset.notes[-1]


def test_a_plain_list_with_relative_paths(tmp_path: Path) -> None:
    files = write_class_folders(tmp_path / "data", {"a": 2})
    listing = tmp_path / "bad.txt"
    listing.write_text(f"# reviewed\n\ndata/a/{files[1].name}\n")
    assert read_exclusions(listing) == {files[1].resolve()}


def test_a_csv_without_a_file_column_is_one_clear_error(tmp_path: Path) -> None:
    table = tmp_path / "x.csv"
    table.write_text("path,label\nx.jpg,a\n")
    with pytest.raises(ExcludeError, match=r"x.csv: no `file` column \(it has: path, label\)"):
        read_exclusions(table)
    with pytest.raises(ExcludeError, match="cannot read it"):
        read_exclusions(tmp_path / "missing.csv")
