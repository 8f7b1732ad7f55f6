"""Issue 4's pipeline benchmark: `actiscope predict` on a whole folder against the pure model time.

    .venv/bin/python bench/bench_predict.py RUN [IMAGES] [--backend auto] [--repeats 3]

IMAGES defaults to ../shared/data/har15/images (6,000 JPEGs). The command is timed end to end as a user
runs it (process start, imports, model load, decoding in background processes, inference, CSV written).
The pure model time is the same model on the same images already decoded and normalised in memory,
batch 32; for an ONNX backend, the faster of actiscope's session and one with ONNX Runtime's default
options (so a session setting cannot make the model look slower than it is). Their ratio says whether
the I/O pipeline is the bottleneck (goal: at most 1.2x). Each is measured `--repeats` times, in an
order rotated every repeat, and the medians are compared; `startup_s` is the same command on one image,
`decode_only_s` the decoding processes alone (`decode_core_ms_per_image`: that x workers per image).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from actiscope.package import INT8_FILE, ONNX_FILE, package_dir
from actiscope.predict import Predictor, collect_inputs, decoded_batches


def command_seconds(run: Path, images: Path, backend: str, workers: str) -> tuple[float, str]:
    out = Path(tempfile.mkdtemp(prefix="actiscope-predict-")) / "predictions.csv"
    command = [
        sys.executable,
        "-m",
        "actiscope.cli",
        "predict",
        str(run),
        str(images),
        "--out",
        str(out),
        "--backend",
        backend,
        "--workers",
        workers,
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    rows = out.read_text(encoding="utf-8").count("\n") - 1
    return seconds, f"{rows} rows; {proc.stdout.strip().splitlines()[-1]}"


def model_seconds(run: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray) -> float:
    run(pixels[:32])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(pixels), 32):
        run(pixels[i : i + 32])
    return time.perf_counter() - start


def default_session(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("images", type=Path, nargs="?", default=Path("../shared/data/har15/images"))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--workers", default="2", help="decoding processes for `actiscope predict`")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    predictor = Predictor.load(args.run, backend=args.backend)
    files, _ = collect_inputs([args.images])
    paths = [f.path for f in files]
    start = time.perf_counter()  # the decoding processes alone, no model
    for _ in decoded_batches(paths, predictor.preprocess, 32, int(args.workers)):
        pass
    decode_s = time.perf_counter() - start
    pixels = np.stack([predictor.preprocess(p) for p in paths])  # decoded up front, not timed
    models: dict[str, Callable[[np.ndarray], np.ndarray]] = {"actiscope": predictor.probabilities}
    if predictor.backend.startswith("onnx"):
        file = ONNX_FILE if predictor.backend == "onnx" else INT8_FILE
        models["onnxruntime defaults"] = default_session(package_dir(args.run) / file)
    commands: list[float] = []
    pure: dict[str, list[float]] = {name: [] for name in models}
    order = ["command", *models]
    summary = ""
    for repeat in range(args.repeats):
        # Rotated each repeat: whatever runs right after the command was measured up to 10% slower here.
        for name in order[repeat % len(order) :] + order[: repeat % len(order)]:
            if name == "command":
                seconds, summary = command_seconds(args.run, args.images, args.backend, args.workers)
                commands.append(seconds)
            else:
                pure[name].append(model_seconds(models[name], pixels))
    startup = [command_seconds(args.run, paths[0], args.backend, args.workers)[0] for _ in range(3)]
    pure_s = min(statistics.median(times) for times in pure.values())
    command_s = statistics.median(commands)
    print(summary)
    print(
        json.dumps(
            {
                "images": len(files),
                "backend": predictor.backend,
                "command_s": [round(s, 1) for s in commands],
                "pure_model_s": {name: [round(s, 1) for s in times] for name, times in pure.items()},
                "startup_s": round(statistics.median(startup), 2),
                "decode_only_s": round(decode_s, 1),
                "decode_core_ms_per_image": round(decode_s * max(int(args.workers), 1) / len(paths) * 1e3, 2),
                "ratio_of_medians": round(command_s / pure_s, 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
