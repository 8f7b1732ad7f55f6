"""Shared by the peer scripts: read actiscope's split.json and score test predictions the same way."""

from __future__ import annotations

import json
from pathlib import Path


def read_split(path: str) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """(class names, {split: [(absolute path, label), ...]})."""
    manifest = json.loads(Path(path).read_text())
    root = Path(manifest["root"])
    files: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for entry in manifest["entries"]:
        files[entry["split"]].append((str(root / entry["path"]), entry["label"]))
    return manifest["classes"], files


def score(true: list[str], predicted: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"test_acc": round(accuracy_score(true, predicted), 4),
            "test_f1": round(f1_score(true, predicted, average="macro"), 4)}  # fmt: skip
