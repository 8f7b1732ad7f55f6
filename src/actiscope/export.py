"""`actiscope export`: the model package as ONNX (dynamic batch) or TorchScript, optionally int8.

After an ONNX export the same 32 images go through PyTorch and ONNX Runtime and the largest
probability difference is reported. The exported file joins the package, so `--backend onnx` finds it.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from actiscope.data.split import SplitManifest
from actiscope.errors import ActiscopeError
from actiscope.files import atomic_output
from actiscope.package import load_package, package_dir
from actiscope.predict import ONNX_FILE, Preprocessor, onnx_session, softmax

log = logging.getLogger(__name__)
FORMATS = ("onnx", "torchscript")
INT8_FILE, TORCHSCRIPT_FILE = "model.int8.onnx", "model.torchscript.pt"


class ExportError(ActiscopeError):
    pass


@dataclass
class ExportResult:
    path: Path
    max_prob_diff: float | None = None  # PyTorch vs exported, on `checked` images
    checked: int = 0
    check_source: str = ""
    int8: dict[str, float] | None = None  # accuracy and speed, fp32 vs int8, on the test split


def export(model_path: str | Path, fmt: str, *, out: Path | None = None, quantize: str | None = None,
           calibration_images: int = 128) -> ExportResult:  # fmt: skip
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize {quantize!r}: only int8 is supported")
    if quantize and fmt != "onnx":
        raise ExportError("--quantize int8 works on the ONNX export; use --format onnx")
    directory = package_dir(model_path)
    model, meta = load_package(directory)
    size = meta.image_size
    example = torch.randn(2, 3, size, size)
    target = out or directory / (ONNX_FILE if fmt == "onnx" else TORCHSCRIPT_FILE)
    pixels, source = check_images(directory, Preprocessor(meta), 32)
    with torch.inference_mode():
        reference = torch.softmax(model(pixels), 1).numpy()

    if fmt == "torchscript":
        with atomic_output(target) as tmp:
            torch.jit.save(torch.jit.trace(model, example), str(tmp))
        scripted = torch.jit.load(str(target))
        with torch.inference_mode():
            diff = float(np.abs(torch.softmax(scripted(pixels), 1).numpy() - reference).max())
        return ExportResult(target, diff, len(pixels), source)

    with atomic_output(target) as tmp:
        torch.onnx.export(model, (example,), str(tmp), input_names=["pixels"], output_names=["logits"],
                          dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)  # fmt: skip
    diff = float(np.abs(softmax(onnx_session(target)(pixels.numpy())) - reference).max())
    result = ExportResult(target, diff, len(pixels), source)
    if quantize:
        result.int8 = quantize_int8(directory, target, Preprocessor(meta), calibration_images)
    return result


def check_images(directory: Path, pixels: Preprocessor, count: int) -> tuple[torch.Tensor, str]:
    """Up to `count` test images of the package's run (its split.json), else random input."""
    split = directory.parent / "split.json"
    if split.is_file():
        samples = SplitManifest.load(split).samples("test")[:count]
        if samples:
            return torch.stack([pixels(s.path) for s in samples]), f"{len(samples)} test images of the run"
    generator = torch.Generator().manual_seed(0)
    return torch.randn(
        count, 3, pixels.image_size, pixels.image_size, generator=generator
    ), "random input (no run split found)"


def quantize_int8(
    directory: Path, onnx_path: Path, pixels: Preprocessor, calibration_images: int
) -> dict[str, float]:
    """Static int8 quantization calibrated on training images; accuracy and speed before and after."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    split = directory.parent / "split.json"
    if not split.is_file():
        raise ExportError(
            f"{directory}: int8 calibration needs the run's split.json beside the package (train images)"
        )
    manifest = SplitManifest.load(split)
    train = manifest.samples("train")
    calibration = random.Random(0).sample(train, min(calibration_images, len(train)))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"pixels": pixels(s.path)[None].numpy()} for s in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    target = directory / INT8_FILE
    with atomic_output(target) as tmp:
        quantize_static(str(onnx_path), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    test = manifest.samples("test")
    index = {name: i for i, name in enumerate(manifest.classes)}
    x = torch.stack([pixels(s.path) for s in test]).numpy()
    y = np.array([index[s.label] for s in test])  # type: ignore[index]
    report: dict[str, float] = {"test_images": len(test)}
    for name, path in (("fp32", onnx_path), ("int8", target)):
        run = onnx_session(path)
        start = time.perf_counter()
        logits = np.concatenate([run(x[i : i + 32]) for i in range(0, len(x), 32)])
        report[f"{name}_images_per_s"] = round(len(x) / (time.perf_counter() - start), 1)
        report[f"{name}_accuracy"] = round(float((logits.argmax(1) == y).mean()), 4)
    return report
