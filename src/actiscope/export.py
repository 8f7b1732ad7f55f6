"""`actiscope export`: the model package as ONNX (dynamic batch) or TorchScript, optionally int8.

After an ONNX export the same 32 images go through PyTorch and ONNX Runtime and the largest
probability difference is reported. The exported file joins the package, so `--backend onnx` finds it.
An ensemble exports as one graph (models.ensemble: its output is the log of the members' mean
probabilities, which the backends take as logits). Images are given as the model was trained: as their
person crop where the run's split has a box and the model was trained on crops.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from actiscope.data.config import DataConfig
from actiscope.data.split import SplitManifest
from actiscope.errors import ActiscopeError
from actiscope.files import atomic_output
from actiscope.models.registry import example_input
from actiscope.package import (
    INT8_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    load_package,
    package_dir,
    package_split,
    record_export,
)
from actiscope.predict import OnnxBackend, Preprocessor, TorchBackend, softmax

log = logging.getLogger(__name__)
FORMATS = ("onnx", "torchscript")


class ExportError(ActiscopeError):
    pass


@dataclass
class ExportResult:
    path: Path
    max_prob_diff: float | None = None  # PyTorch vs exported, on `checked` images
    checked: int = 0
    check_source: str = ""
    int8: dict[str, float] | None = None  # accuracy and speed, fp32 vs int8, on the test (else val) split
    inputs: str = "images"  # what the package takes (images or clips), for messages

    def int8_line(self) -> str:
        """How the int8 model compares with fp32, naming what it was measured on, e.g. "int8 agrees with
        fp32 on 97.3% of the 150 test images (accuracy 0.9133 vs 0.9200), 2.6x faster"."""
        q = self.int8 or {}
        split = "test" if "test_images" in q else "validation"
        count = int(q.get("test_images", q.get("val_images", 0)))
        return (
            f"int8 agrees with fp32 on {q['top1_agreement']:.1%} of the {count} {split} {self.inputs} "
            f"(accuracy {q['int8_accuracy']:.4f} vs {q['fp32_accuracy']:.4f}), "
            f"{q['int8_images_per_s'] / q['fp32_images_per_s']:.1f}x faster"
        )


def export(
    model_path: str | Path,
    fmt: str,
    *,
    out: Path | None = None,
    quantize: str | None = None,
    calibration_images: int = 128,
) -> ExportResult:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize {quantize!r}: only int8 is supported")
    if quantize and fmt != "onnx":
        raise ExportError("--quantize int8 works on the ONNX export; use --format onnx")
    directory = package_dir(model_path)
    model, meta = load_package(directory)
    example = example_input(model.data_config, 2)
    target = out or directory / (ONNX_FILE if fmt == "onnx" else TORCHSCRIPT_FILE)
    pixels, source = check_images(directory, Preprocessor(meta), 32)
    with torch.inference_mode():
        reference = torch.softmax(model(pixels), 1).numpy()

    with atomic_output(target) as tmp:
        if fmt == "torchscript":
            with tmp.open("wb") as fh:  # through Python, a full disk is the OSError the CLI names
                torch.jit.save(torch.jit.trace(model, example), fh)
        else:
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                input_names=["pixels"],
                output_names=["logits"],
                dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
    if fmt == "torchscript":
        scripted = torch.jit.load(str(target))
        with torch.inference_mode():
            probs = torch.softmax(scripted(pixels), 1).numpy()
    else:
        session = OnnxBackend(target)
        probs = softmax(session(pixels.numpy()))
    result = ExportResult(target, float(np.abs(probs - reference).max()), len(pixels), source)
    result.inputs = "clips" if meta.kind == "video" else "images"
    in_package = target.parent.resolve() == directory.resolve()
    if in_package:
        check: dict[str, object] = {"max_prob_diff": result.max_prob_diff, "checked_on": source}
        if fmt == "onnx":  # `--backend auto` keeps PyTorch where ONNX Runtime is slower (3D convolutions)
            torch_run = TorchBackend(directory)  # timed as the torch backend runs (its precision rule)
            check["torch_per_s"] = _rate(lambda: torch_run(pixels.numpy()), len(pixels))
            check["torch_precision"] = torch_run.choice.precision
            check["onnx_per_s"] = _rate(lambda: session(pixels.numpy()), len(pixels))
        record_export(directory, target.name, check)
    if quantize:
        result.int8 = quantize_int8(directory, target, Preprocessor(meta), calibration_images)
        if in_package:
            record_export(directory, INT8_FILE, result.int8)
    return result


def _rate(run: Callable[[], object], items: int, repeats: int = 3) -> float:
    """Inputs per second of `run` on a batch of `items`, after one warm-up call."""
    run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return round(repeats * items / (time.perf_counter() - start), 1)


def check_images(directory: Path, pixels: Preprocessor, count: int) -> tuple[torch.Tensor, str]:
    """Up to `count` test images of the package's run (its split.json), else random input."""
    split = package_split(directory)
    if split is not None:
        samples = SplitManifest.load(split).samples("test")[:count]
        if samples:
            what = "clips" if pixels.frames else "images"
            batch = torch.from_numpy(np.stack([pixels(s.path, s.box) for s in samples]))
            return batch, f"{len(samples)} test {what} of the run"
    config = DataConfig(pixels.image_size, frames=pixels.frames)
    return example_input(config, count), "random input (no run split found)"


def quantize_int8(
    directory: Path, onnx_path: Path, pixels: Preprocessor, calibration_images: int
) -> dict[str, float]:
    """Static int8 quantization calibrated on training images; accuracy and speed before and after."""
    split = package_split(directory)
    if split is None:
        raise ExportError(
            f"{directory}: int8 calibration needs the training images of the package's run (its split); "
            "export the package inside its run directory"
        )
    manifest = SplitManifest.load(split)
    train = manifest.samples("train")
    calibration = random.Random(0).sample(train, min(calibration_images, len(train)))
    target = directory / INT8_FILE
    quantize_onnx(onnx_path, target, (pixels(s.path, s.box)[None] for s in calibration))
    split_name = "test" if manifest.samples("test") else "val"  # without a test split: the val images
    test = manifest.samples(split_name)
    if not test:
        raise ExportError(f"{split}: no test or val images to check the int8 model's accuracy on")
    index = {name: i for i, name in enumerate(manifest.classes)}
    y = np.array([index[str(s.label)] for s in test])  # test samples are labelled
    sessions = {"fp32": OnnxBackend(onnx_path), "int8": OnnxBackend(target)}
    predicted: dict[str, list[np.ndarray]] = {"fp32": [], "int8": []}
    seconds = {"fp32": 0.0, "int8": 0.0}
    for start in range(0, len(test), 32):  # decoded per batch: a test split of clips does not fit in memory
        x = np.stack([pixels(s.path, s.box) for s in test[start : start + 32]])
        for name, run in sessions.items():
            began = time.perf_counter()
            predicted[name].append(run(x).argmax(1))
            seconds[name] += time.perf_counter() - began
    report: dict[str, float] = {f"{split_name}_images": len(test)}
    for name in sessions:
        report[f"{name}_images_per_s"] = round(len(test) / seconds[name], 1)
        report[f"{name}_accuracy"] = round(float((np.concatenate(predicted[name]) == y).mean()), 4)
    agree = np.concatenate(predicted["fp32"]) == np.concatenate(predicted["int8"])
    report["top1_agreement"] = round(float(agree.mean()), 4)
    return report


def quantize_onnx(onnx_path: Path, target: Path, calibration: Iterable[np.ndarray]) -> None:
    """ONNX Runtime static int8 (QOperator, per-channel weights), calibrated on NCHW float32 batches.

    Shape inference and graph optimisation first, then QOperator (fused int8 kernels): on AVX2 this
    measured 84 vs 31 images/s for plain QDQ (resnet18 at 224). Weights use 7 bits (`reduce_range`):
    x86 CPUs without VNNI multiply uint8 by int8 in pairs that saturate at 8 bits, which is what cost the
    first convolution its accuracy. The classifier stays fp32. On the har15 recipe model (900 test images,
    fp32 32.89%): first convolution and classifier fp32, 8-bit weights 33.11%, 210-234 images/s; only the
    classifier fp32, 8-bit 32.22%, 290; the same with 7-bit weights 32.67%, 261-268 (this one).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter(calibration)

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(batches, None)
            return None if batch is None else {"pixels": batch}

    with atomic_output(target) as tmp:
        prepared = tmp.with_name(tmp.name + ".prepared.onnx")
        try:
            quant_pre_process(str(onnx_path), str(prepared))
            quantize_static(
                str(prepared),
                str(tmp),
                Reader(),
                quant_format=QuantFormat.QOperator,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=_last_layer(prepared),
            )
        finally:
            prepared.unlink(missing_ok=True)


def _last_layer(onnx_path: Path) -> list[str]:
    import onnx

    weighted = [
        n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")
    ]
    return weighted[-1:]
