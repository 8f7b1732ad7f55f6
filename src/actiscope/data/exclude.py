"""`--exclude FILE`: images a reviewer took out (the audit's audit.csv, edited, or a plain list).

A CSV with a `file` column: rows whose `exclude` column says yes (yes/y/true/1/x) are excluded; without an
`exclude` column every row is. Any other file: one path per line (blank lines and # comments skipped).
Relative paths are relative to the file's folder; a path matches a sample by its resolved location.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from actiscope.data.formats import Dataset
from actiscope.errors import ActiscopeError

YES = {"yes", "y", "true", "1", "x"}


class ExcludeError(ActiscopeError):
    pass


def read_exclusions(path: str | Path) -> set[Path]:
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExcludeError(f"--exclude {path}: cannot read it ({exc})") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        columns = rows[0].keys() if rows else []
        if rows and "file" not in columns:
            raise ExcludeError(f"--exclude {path}: no `file` column (it has: {', '.join(columns)})")
        names = [r["file"] for r in rows if "exclude" not in r or (r["exclude"] or "").strip().lower() in YES]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {_resolve(name, path.parent) for name in names}


def _resolve(name: str, base: Path) -> Path:
    file = Path(name).expanduser()
    return (file if file.is_absolute() else base / file).resolve()


def without(dataset: Dataset, excluded: set[Path]) -> Dataset:
    """The dataset minus the excluded files, with a note saying how many went."""
    kept = [s for s in dataset.samples if s.path.resolve() not in excluded]
    gone = len(dataset.samples) - len(kept)
    note = f"{gone} file(s) excluded by --exclude ({len(excluded) - gone} listed but not in the dataset)"
    return replace(dataset, samples=kept, notes=[*dataset.notes, note])
