"""Does bf16 autocast change a trained model's answers? fp32 vs bf16 on a run's test split.

    .venv/bin/python bench/bench_bf16_accuracy.py RUN_DIR

Prints test accuracy under each, top-1 agreement, the largest probability difference, and images/s
(bf16 is only fast where the CPU computes it natively; `--precision auto` checks for that).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from actiscope.data.split import SplitManifest
from actiscope.hardware import cpu_has_bf16
from actiscope.predict import Predictor


def main() -> None:
    run = Path(sys.argv[1])
    manifest = SplitManifest.load(run / "split.json")
    test = manifest.samples("test")
    labels = np.array([manifest.classes.index(s.label) for s in test])  # type: ignore[arg-type]
    results = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        predictor = Predictor.load(run, backend="torch", bf16=bf16)
        pixels = np.stack([predictor.preprocess(s.path) for s in test])
        start = time.perf_counter()
        probs = np.concatenate(
            [predictor.probabilities(pixels[i : i + 32]) for i in range(0, len(pixels), 32)]
        )
        results[name] = (probs, len(pixels) / (time.perf_counter() - start))
    (p32, rate32), (p16, rate16) = results["fp32"], results["bf16"]
    print(
        json.dumps(
            {
                "test_images": len(test),
                "cpu_native_bf16": cpu_has_bf16(),
                "fp32_accuracy": round(float((p32.argmax(1) == labels).mean()), 4),
                "bf16_accuracy": round(float((p16.argmax(1) == labels).mean()), 4),
                "top1_agreement": round(float((p32.argmax(1) == p16.argmax(1)).mean()), 4),
                "max_prob_diff": round(float(np.abs(p32 - p16).max()), 4),
                "fp32_images_per_s": round(rate32, 1),
                "bf16_images_per_s": round(rate16, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
