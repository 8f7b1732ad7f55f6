"""A smaller split.json carved from a full one, so throughput benchmarks take minutes, not hours."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from actiscope.data.split import SplitManifest


def subset_manifest(
    split: str, out: Path, *, train: int, val: int = 64, test: int = 64, seed: int = 0
) -> Path:
    manifest = SplitManifest.load(split)
    rng = random.Random(seed)
    keep = []
    for name, count in (("train", train), ("val", val), ("test", test)):
        entries = [e for e in manifest.entries if e.split == name]
        keep += rng.sample(entries, min(count, len(entries)))
    replace(manifest, entries=keep).save(out)
    return out
