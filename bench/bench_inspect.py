"""Time `actiscope data inspect` and `data split` on the real har15 pool (6,000 images).

    .venv/bin/python bench/bench_inspect.py [DATA]

Prints wall-clock seconds and images/s; the issue's goal is under a minute on 2 cores.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from actiscope.data.formats import load_dataset
from actiscope.data.inspect import inspect_dataset
from actiscope.data.scan import scan_files
from actiscope.data.split import make_split


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "../shared/data/har15"
    start = time.perf_counter()
    dataset = load_dataset(data)
    report = inspect_dataset(dataset)
    inspect_s = time.perf_counter() - start
    n = report.num_files
    print(
        f"inspect: {n} files in {inspect_s:.1f} s ({n / inspect_s:.0f} images/s); "
        f"unreadable {len(report.unreadable)}, duplicate groups {len(report.duplicates)}, "
        f"leakage groups {len(report.leakage)}"
    )
    start = time.perf_counter()
    scans = scan_files([s.path for s in dataset.samples])
    scan_s = time.perf_counter() - start
    start = time.perf_counter()
    manifest = make_split(dataset, scans=scans)
    split_s = time.perf_counter() - start
    sizes = {k: sum(v.values()) for k, v in manifest.counts().items()}
    print(f"split: scan {scan_s:.1f} s + grouping/allocation {split_s:.2f} s -> {sizes}")


if __name__ == "__main__":
    main()
