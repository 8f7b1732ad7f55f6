"""Issue 4's benchmark: CPU inference speed per backend, in one run.

    .venv/bin/python bench/bench_inference.py [--models resnet18,mobilenet_v3_large] [--size 224] [--run RUN]

For each model: images/s at batch 32 and median/p95 latency at batch 1 for PyTorch eager fp32,
PyTorch channels_last + bf16 autocast, ONNX Runtime fp32 and ONNX Runtime int8 (static, calibrated on
random images here: speed does not depend on the values). `--run` adds a trained run's model at its own
size, with int8 calibrated on its training images and accuracy reported by `actiscope export`.
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

from actiscope.export import export
from actiscope.models.registry import create_model
from actiscope.package import load_package, save_package
from actiscope.predict import onnx_session


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
    return {"images_per_s": round(rate, 1), "p50_ms": round(statistics.median(latencies), 2),
            "p95_ms": round(latencies[int(0.95 * len(latencies)) - 1], 2)}  # fmt: skip


def torch_runner(model: torch.nn.Module, *, bf16: bool) -> Callable[[np.ndarray], object]:
    model = model.eval()
    if bf16:
        model = model.to(memory_format=torch.channels_last)

    def run(batch: np.ndarray) -> object:
        x = torch.from_numpy(batch)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(x.contiguous(memory_format=torch.channels_last) if bf16 else x)

    return run


def measure(package: Path, size: int) -> dict[str, dict[str, float]]:
    model, _ = load_package(package)
    export(package, "onnx")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class RandomImages(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            self.items = iter(
                [{"pixels": rng.standard_normal((1, 3, size, size)).astype(np.float32)} for _ in range(16)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    int8 = package / "model.int8.onnx"
    if not int8.is_file():
        quantize_static(str(package / "model.onnx"), str(int8), RandomImages(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    return {
        "torch_fp32_eager": rate_and_latency(torch_runner(model, bf16=False), size),
        "torch_channels_last_bf16": rate_and_latency(torch_runner(model, bf16=True), size),
        "onnxruntime_fp32": rate_and_latency(onnx_session(package / "model.onnx"), size),
        "onnxruntime_int8": rate_and_latency(onnx_session(int8), size),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet18,mobilenet_v3_large")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--run", type=Path, help="also measure this trained run's model")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="actiscope-infer-"))
    results = {}
    for name in args.models.split(","):
        package = work / name / "model"
        save_package(
            create_model(name, 15, image_size=args.size), package, class_names=[f"c{i}" for i in range(15)]
        )
        results[f"{name}@{args.size}"] = measure(package, args.size)
    if args.run:
        meta_size = load_package(args.run)[1].image_size
        results[f"run {args.run.name}@{meta_size}"] = measure(args.run / "model", meta_size)
    print(json.dumps({"threads": torch.get_num_threads(), **results}, indent=1))


if __name__ == "__main__":
    main()
