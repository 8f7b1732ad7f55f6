"""Issue 19's benchmark: what an ensemble costs next to what it scores, members and ensemble measured in
one process, interleaved (so that a busy machine slows them alike).

    .venv/bin/python bench/bench_ensemble.py COMPARE_DIR [--repeats 50]

COMPARE_DIR is the --out of `actiscope compare --ensemble K`. For each member and the ensemble package:
the test accuracy (from its evaluation), and the median ms/image at batch 1 and images/s at batch 32 on
every backend the package has (torch, onnx, onnx-int8), on the decoded test images. Prints figures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from actiscope.data.split import SplitManifest
from actiscope.package import INT8_FILE, ONNX_FILE, read_meta
from actiscope.predict import Predictor
from actiscope.run import CompareDir, RunDir


def backends(run: RunDir) -> list[str]:
    found = ["torch"]
    found += ["onnx"] if (run.model / ONNX_FILE).is_file() else []
    found += ["onnx-int8"] if (run.model / INT8_FILE).is_file() else []
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comparison", type=Path)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    comparison = CompareDir(args.comparison)
    ensemble = comparison.ensemble
    if not ensemble.has_model():
        raise SystemExit(f"{ensemble.model}: no ensemble package; run compare with --ensemble K")
    members = [RunDir(p) for p in sorted(comparison.runs.iterdir()) if RunDir(p).has_model()]
    runs = [*members, ensemble]
    test = SplitManifest.load(ensemble.split).samples("test")
    predictors = {(r.name, b): Predictor.load(r.path, b) for r in runs for b in backends(r)}
    first = next(iter(predictors.values()))
    pixels = np.stack([first.preprocess(s.path, s.box) for s in test[:32]])  # one input for all (shared)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in predictors}
    for predictor in predictors.values():
        predictor.probabilities(pixels[:1])
    for i in range(args.repeats):  # interleaved: every predictor sees the same load
        for key, predictor in predictors.items():
            start = time.perf_counter()
            predictor.probabilities(pixels[i % len(pixels)][None])
            times[key].append((time.perf_counter() - start) * 1000)
    print(f"{len(test)} test images; batch 1: median of {args.repeats}; batch 32: one pass after a warm-up")
    print(f"{'package':<40} {'backend':<10} {'accuracy':>8} {'ms/image':>9} {'images/s (32)':>14}")
    for (name, backend), predictor in predictors.items():
        run = next(r for r in runs if r.name == name)
        accuracy = (
            json.loads(run.eval.metrics.read_text())["accuracy"] if run.eval.metrics.is_file() else None
        )
        predictor.probabilities(pixels)
        start = time.perf_counter()
        predictor.probabilities(pixels)
        rate = len(pixels) / (time.perf_counter() - start)
        label = read_meta(run.model).architecture
        shown = "-" if accuracy is None else f"{accuracy:.4f}"
        print(
            f"{label:<40} {backend:<10} {shown:>8} {statistics.median(times[name, backend]):>9.2f} {rate:>14.1f}"
        )


if __name__ == "__main__":
    main()
