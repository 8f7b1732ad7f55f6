"""The runtimes a Predictor can run a package's model on, behind one Protocol: PyTorch and ONNX Runtime
(fp32 or int8), and the rule `auto` uses to choose between them.

torch is imported only by the PyTorch backend: with an ONNX model, `actiscope predict` starts in about
half a second instead of three and a half.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from actiscope.errors import ActiscopeError
from actiscope.package import INT8_FILE, ONNX_FILE, PackageMeta, load_package, read_meta

log = logging.getLogger(__name__)
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
INT8_MAX_DROP = 0.005  # auto uses the int8 model only if it lost at most this much test accuracy


class Backend(Protocol):
    """A package's model on one runtime: a normalised float32 batch (NCHW; clips NTCHW) in, logits out."""

    def __call__(self, batch: np.ndarray, /) -> np.ndarray: ...


def load_backend(
    directory: Path, name: str, *, bf16: bool | None = None, threads: int | None = None
) -> Backend:
    """The package in `directory` on backend `name` ("torch", "onnx" or "onnx-int8", not "auto")."""
    if name == "torch":
        return TorchBackend(directory, bf16=bf16, threads=threads)
    if name in ("onnx", "onnx-int8"):
        onnx = OnnxBackend(directory / (ONNX_FILE if name == "onnx" else INT8_FILE), threads=threads)
        onnx.check_fits(read_meta(directory))
        return onnx
    raise ActiscopeError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS[1:])}")


def choose_backend(directory: Path, meta: PackageMeta) -> str:
    """The fastest backend whose file is in the package and whose check at export passed: int8 when it
    kept the test accuracy within INT8_MAX_DROP *and* measured faster than fp32 ONNX (on CPUs without
    int8 dot-product instructions, depthwise networks such as MobileNet can be slower in int8); ONNX
    Runtime only where it measured faster than PyTorch at export (its 3D convolutions are slower here).
    Packages exported before speeds were recorded go by the files alone."""
    int8 = meta.exports.get(INT8_FILE) or {}
    onnx = meta.exports.get(ONNX_FILE) or {}
    torch_rate = onnx.get("torch_per_s", 0.0)
    if (
        (directory / INT8_FILE).is_file()
        and "int8_accuracy" in int8
        and int8["fp32_accuracy"] - int8["int8_accuracy"] <= INT8_MAX_DROP
        and int8.get("int8_images_per_s", 0) > max(int8.get("fp32_images_per_s", 0), torch_rate)
    ):
        return "onnx-int8"
    if (directory / ONNX_FILE).is_file() and onnx.get("onnx_per_s", float("inf")) > torch_rate:
        return "onnx"
    return "torch"


def _check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1 (or None: the runtime's default), not {threads}")


class OnnxBackend:
    """An ONNX Runtime session on the CPU. `threads`: its intra-op threads (None: the runtime's
    default, all cores; a server with several worker processes gives each a share)."""

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        _check_threads(threads)
        how = "--format onnx --quantize int8" if path.name == INT8_FILE else "--format onnx"
        if not path.is_file():
            raise ActiscopeError(f"{path}: not in the package; create it with `actiscope export MODEL {how}`")
        try:
            import onnxruntime as ort
            from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf
        except ImportError:
            raise ActiscopeError("the onnx backend needs onnxruntime (pip install onnxruntime)") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default
        # Threads spin inside a run (fast) but not after it: the cores go to decoding and other requests.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except (InvalidProtobuf, InvalidGraph, Fail) as exc:  # a damaged or foreign file (ONNX runs no code)
            first = str(exc).strip().partition("\n")[0][:200]
            raise ActiscopeError(
                f"{path}: not a usable ONNX model ({first}); export it again with `actiscope export MODEL {how}`"
            ) from None
        self.path = path
        self._input = self.session.get_inputs()[0].name

    def check_fits(self, meta: PackageMeta) -> None:
        """The file takes the input model.json describes and gives one logit per class (a file from
        another package would fail on the first batch, or rank classes model.json does not have)."""
        size = meta.image_size
        wanted = [meta.frames, 3, size, size] if meta.kind == "video" else [3, size, size]
        takes = self.session.get_inputs()[0].shape[1:]  # a dynamic dimension is a name, not a number
        gives = self.session.get_outputs()[0].shape[-1]
        if (
            len(takes) != len(wanted)
            or any(isinstance(t, int) and t != w for t, w in zip(takes, wanted, strict=True))
            or (isinstance(gives, int) and gives != len(meta.class_names))
        ):
            raise ActiscopeError(
                f"{self.path} does not match model.json (input {wanted}, {len(meta.class_names)} classes): it "
                f"takes {takes} and gives {gives}; export it again with `actiscope export MODEL --format onnx`"
            )

    def __call__(self, batch: np.ndarray, /) -> np.ndarray:
        logits: np.ndarray = self.session.run(None, {self._input: batch})[0]
        return logits


class TorchBackend:
    """The package's PyTorch model, channels_last, in the precision `hardware.choose_precision` picks for
    inference with this architecture on this CPU (`bf16` True/False forces it; `choice` says which and
    why). `threads`: torch's intra-op threads, for the whole process (None: torch's default)."""

    def __init__(self, path: str | Path, *, bf16: bool | None = None, threads: int | None = None) -> None:
        _check_threads(threads)
        import torch

        from actiscope.hardware import choose_precision, default_probe_cache
        from actiscope.models.registry import example_input

        model, _ = load_package(path)
        if threads is not None:
            torch.set_num_threads(threads)
        self.model = model.to_channels_last().eval()
        requested = "auto" if bf16 is None else ("bf16" if bf16 else "32")
        example = example_input(model.data_config, 8)
        self.choice = choose_precision(
            requested, "cpu", model=self.model, example=example, training=False, cache=default_probe_cache()
        )
        log.info(self.choice.line("PyTorch inference"))

    def __call__(self, batch: np.ndarray, /) -> np.ndarray:
        import torch

        pixels = torch.from_numpy(batch)
        if pixels.ndim == 4:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.choice.bf16):
            logits: np.ndarray = self.model(pixels).float().numpy()
        return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probs
