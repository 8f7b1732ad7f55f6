"""Issue 4's pipeline benchmark: `actiscope predict` on a whole folder against the pure model time.

    .venv/bin/python bench/bench_predict.py RUN [IMAGES] [--backend auto]

IMAGES defaults to ../shared/data/har15/images (6,000 JPEGs). The command is timed end to end as a user
runs it (process start, model load, decoding in DataLoader workers, inference, CSV written). The pure model
time is the same backend on the same images already decoded in memory, batch 32. Their ratio says whether
the I/O pipeline is the bottleneck (goal: at most 1.2x); decode_only_s is the input pipeline alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from actiscope.predict import Predictor, _collate, _Files, collect_inputs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("images", type=Path, nargs="?", default=Path("../shared/data/har15/images"))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--workers", default="2", help="decoding processes for `actiscope predict`")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="actiscope-predict-")) / "predictions.csv"
    command = [sys.executable, "-m", "actiscope.cli", "predict", str(args.run), str(args.images),
               "--out", str(out), "--backend", args.backend, "--workers", args.workers]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    command_s = time.perf_counter() - start
    rows = out.read_text(encoding="utf-8").count("\n") - 1

    predictor = Predictor.load(args.run, backend=args.backend)
    files, _ = collect_inputs([args.images])
    # The input pipeline alone: the same DataLoader workers decoding everything, no model.
    loader = DataLoader(_Files([f.path for f in files], predictor.pixels), batch_size=32,
                        num_workers=int(args.workers), collate_fn=_collate)  # fmt: skip
    start = time.perf_counter()
    for _ in loader:
        pass
    decode_s = time.perf_counter() - start
    pixels = torch.stack([predictor.pixels(f.path) for f in files])  # decoded up front, not timed
    predictor.probabilities(pixels[:32])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(pixels), 32):
        predictor.probabilities(pixels[i : i + 32])
    model_s = time.perf_counter() - start
    print(proc.stdout.strip().splitlines()[-1])
    print(json.dumps({"images": len(files), "rows": rows, "backend": predictor.backend,
                      "command_s": round(command_s, 1), "pure_model_s": round(model_s, 1),
                      "decode_only_s": round(decode_s, 1),
                      "ratio": round(command_s / model_s, 2)}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
