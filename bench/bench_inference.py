"""Issue 4's benchmark: CPU inference speed per backend, in one run.

    .venv/bin/python bench/bench_inference.py [--models resnet18,mobilenet_v3_large] [--size 224] [--run RUN]

For each model: images/s at batch 32 and median/p95 latency at batch 1 for PyTorch eager fp32,
PyTorch channels_last + bf16 autocast, ONNX Runtime fp32 and ONNX Runtime int8 (actiscope's own
quantization, calibrated on random images for the untrained models: speed does not depend on the values).
`--run` adds a trained run's model at its own size, int8 calibrated on its training images, and the
test-split accuracy of every backend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from actiscope.data.split import SplitManifest
from actiscope.export import export, quantize_onnx
from actiscope.models.registry import create_model
from actiscope.package import INT8_FILE, ONNX_FILE, load_package, read_meta, save_package
from actiscope.predict import OnnxBackend, Predictor, Preprocessor


def rate_and_latency(run: Callable[[np.ndarray], object], size: int, repeats: int = 5) -> dict[str, float]:
    batch = np.random.default_rng(0).standard_normal((32, 3, size, size)).astype(np.float32)
    one = batch[:1]
    run(batch)
    run(one)
    start = time.perf_counter()
    for _ in range(repeats):
        run(batch)
    rate = 32 * repeats / (time.perf_counter() - start)
    latencies = []
    for _ in range(50):
        start = time.perf_counter()
        run(one)
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    return {
        "images_per_s": round(rate, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(latencies[int(0.95 * len(latencies)) - 1], 2),
    }


def torch_runner(model: torch.nn.Module, *, bf16: bool) -> Callable[[np.ndarray], np.ndarray]:
    model = model.eval()
    if bf16:
        model = model.to(memory_format=torch.channels_last)

    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(x.contiguous(memory_format=torch.channels_last) if bf16 else x).float().numpy()

    return run


def runners(package: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    model, _ = load_package(package)
    return {
        "torch_fp32_eager": torch_runner(model, bf16=False),
        "torch_channels_last_bf16": torch_runner(model, bf16=True),
        "onnxruntime_fp32": OnnxBackend(package / ONNX_FILE),
        "onnxruntime_int8": OnnxBackend(package / INT8_FILE),
    }


def test_accuracy(run: Path, backends: dict[str, Callable[[np.ndarray], np.ndarray]]) -> dict[str, float]:
    manifest = SplitManifest.load(run / "split.json")
    pixels = Preprocessor(read_meta(run))
    test = manifest.samples("test")
    x = np.stack([pixels(s.path) for s in test])
    y = np.array([manifest.classes.index(s.label) for s in test])  # type: ignore[arg-type]
    out = {}
    for name, backend in backends.items():
        logits = np.concatenate(
            [np.asarray(backend(x[i : i + 32]), dtype=np.float32) for i in range(0, len(x), 32)]
        )
        out[name] = round(float((logits.argmax(1) == y).mean()), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet18,mobilenet_v3_large")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--run", type=Path, help="also measure this trained run's model, with accuracy")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="actiscope-infer-"))
    results: dict[str, object] = {"threads": torch.get_num_threads()}
    for name in args.models.split(",") if args.models else []:
        package = work / name / "model"
        save_package(
            create_model(name, 15, image_size=args.size), package, class_names=[f"c{i}" for i in range(15)]
        )
        export(package, "onnx")
        rng = np.random.default_rng(1)
        quantize_onnx(
            package / ONNX_FILE,
            package / INT8_FILE,
            (rng.standard_normal((1, 3, args.size, args.size)).astype(np.float32) for _ in range(16)),
        )
        results[f"{name}@{args.size}"] = {
            k: rate_and_latency(r, args.size) for k, r in runners(package).items()
        }
        print(json.dumps(results, indent=1), flush=True)
    if args.run:
        export(args.run, "onnx", quantize="int8")  # as training does: calibrated on the run's train images
        size = read_meta(args.run).image_size
        backends = runners(args.run / "model")
        results[f"run {args.run.name}@{size}"] = {
            "speed": {k: rate_and_latency(r, size) for k, r in backends.items()},
            "test_accuracy": test_accuracy(args.run, backends),
            "auto_backend": Predictor.load(args.run).backend,
        }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
