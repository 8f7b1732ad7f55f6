"""The readers' fuzzing at length: tests/data/test_fuzz_readers.py's properties with many random inputs.

    python bench/bench_fuzz.py --images 20000 --clips 2000

Prints, per reader: inputs tried, decoded, refused with the project's error, crashes (anything else, a
hang past the per-input bound or memory growth past the limit fails the property: hypothesis then prints
the smallest failing input), the slowest input and the peak memory growth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = {
    "images": "test_mutated_images_decode_or_are_refused_by_name",
    "clips": "test_mutated_clips_decode_or_are_refused_by_name",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=20000, help="mutated images to try")
    parser.add_argument("--clips", type=int, default=2000, help="mutated clips to try")
    args = parser.parse_args()
    for reader, count in (("images", args.images), ("clips", args.clips)):
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            env = {**os.environ, "FUZZ_EXAMPLES": str(count), "FUZZ_REPORT": str(report)}
            started = time.monotonic()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-W",
                    "ignore",
                    f"tests/data/test_fuzz_readers.py::{TESTS[reader]}",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            minutes = (time.monotonic() - started) / 60
            if proc.returncode:
                print(f"{reader}: CRASH (a property failed after {minutes:.1f} min)\n{proc.stdout[-4000:]}")
                continue
            result = json.loads(report.read_text())[reader]
            print(
                f"{reader}: {result['inputs']} inputs in {minutes:.1f} min, {result['decoded']} decoded, "
                f"{result['refused']} refused by name, crashes: 0, slowest {result['slowest_s']} s, "
                f"peak memory growth {result['peak_rss_growth_mb']} MB"
            )


if __name__ == "__main__":
    main()
