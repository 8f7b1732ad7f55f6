"""The one Predictor: a model package in, top-k classes with probabilities out.

It applies exactly the preprocessing recorded in model.json, through the same functions training used
(images.load_image -> transforms.preprocess -> transforms.Normalize). The CLI and the web app both use it.

Pixels are numpy arrays here and torch is imported only by the PyTorch backend: with an ONNX model,
`actiscope predict` starts in about half a second instead of three and a half.
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from actiscope.data.images import load_image
from actiscope.data.transforms import Normalize, hflip_tta, preprocess
from actiscope.data.video import (
    VideoReadError,
    clip_frames,
    probe_video,
    read_clip,
    window_frames,
    windows,
)
from actiscope.errors import ActiscopeError, MediaReadError
from actiscope.package import INT8_FILE, ONNX_FILE, PackageMeta, load_package, package_dir, read_meta

log = logging.getLogger(__name__)
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
INT8_MAX_DROP = 0.005  # auto uses the int8 model only if it lost at most this much test accuracy

ImageInput = str | Path | BinaryIO | Image.Image | np.ndarray


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    top_k: list[tuple[str, float]]  # best first


@dataclass(frozen=True)
class Segment:
    """One window of a clip's timeline."""

    start: float  # seconds
    end: float
    prediction: Prediction


class Preprocessor:
    """Any image input to a normalised float32 CHW array (a clip: TCHW), exactly as training evaluated.
    Small and picklable, so decoding processes get this and never the model. They run `pixels_uint8`
    (uint8: a quarter of float32's memory to share); `normalize` then runs on the whole batch."""

    def __init__(self, meta: PackageMeta) -> None:
        self.image_size, self.frames = meta.image_size, meta.frames if meta.kind == "video" else None
        self.normalize = Normalize(tuple(meta.mean), tuple(meta.std))

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape `pixels_uint8` returns: (3, size, size), for a clip (frames, 3, size, size)."""
        image = (3, self.image_size, self.image_size)
        return (self.frames, *image) if self.frames else image

    def pixels_uint8(self, source: ImageInput) -> np.ndarray:
        if self.frames:
            return self._clip_uint8(source)
        if isinstance(source, np.ndarray):
            source = Image.fromarray(source.astype(np.uint8)).convert("RGB")
        image = (
            source.convert("RGB")
            if isinstance(source, Image.Image)
            else load_image(source, draft=self.image_size)
        )
        return np.ascontiguousarray(preprocess(image, self.image_size).transpose(2, 0, 1))

    def _clip_uint8(self, source: ImageInput) -> np.ndarray:
        """A clip file, upload or (T, H, W, 3) array to the model's frames, as training evaluated."""
        if isinstance(source, Image.Image):
            raise VideoReadError("<image>", "this is a video model; give it a clip, not an image")
        frames = clip_frames(source, self.image_size, self.frames)  # type: ignore[arg-type]
        return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))

    def __call__(self, source: ImageInput) -> np.ndarray:
        return self.normalize(self.pixels_uint8(source))


class Predictor:
    """Load once, predict many: `Predictor.load(MODEL, backend="torch"|"onnx")`."""

    def __init__(self, meta: PackageMeta, run: object, *, backend: str) -> None:
        self.meta, self.backend, self._run = meta, backend, run
        self.class_names = meta.class_names
        self.pixels = Preprocessor(meta)

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", *, bf16: bool | None = None) -> Predictor:
        """backend "auto": the int8 ONNX model if its recorded accuracy check passed, else the fp32 ONNX
        model, else PyTorch (see `choose_backend`)."""
        if backend not in BACKENDS:
            raise ActiscopeError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        directory = package_dir(path)
        meta = read_meta(directory)
        if backend == "auto":
            backend = choose_backend(directory, meta)
        if backend != "torch":
            session = onnx_session(directory / (ONNX_FILE if backend == "onnx" else INT8_FILE))
            return cls(meta, session, backend=backend)
        return cls(meta, TorchRunner(path, bf16), backend="torch")

    # -- prediction -----------------------------------------------------------------------------------
    def probabilities(self, batch: np.ndarray, *, tta: bool = False) -> np.ndarray:
        """Class probabilities for a normalised NCHW (clips: NTCHW) float32 batch; `tta` averages in
        the mirrored image. A CPU tensor is taken too."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        probs = softmax(self._run(batch))  # type: ignore[operator]
        if tta:
            probs = (probs + softmax(self._run(hflip_tta(batch)))) / 2  # type: ignore[operator]
        return probs

    def predict(
        self, inputs: Sequence[ImageInput], *, top_k: int = 3, batch_size: int = 32, tta: bool = False
    ) -> list[Prediction]:
        """Predict in-memory images/clips or files; a bad file raises MediaReadError naming it."""
        out: list[Prediction] = []
        for start in range(0, len(inputs), batch_size):
            batch = np.stack([self.pixels(item) for item in inputs[start : start + batch_size]])
            out += self._decode(self.probabilities(batch, tta=tta), top_k)
        return out

    def file_probabilities(
        self, paths: Sequence[Path], *, batch_size: int = 32, workers: int = 2, tta: bool = False
    ) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        """(index, probabilities, error) for each file, in order. Decoding runs in `workers` background
        processes in parallel with inference (see `decoded_batches`), and an unreadable file yields its
        error instead of stopping the run."""
        for indices, batch, errors in decoded_batches(paths, self.pixels, batch_size, workers):
            probs = iter(self.probabilities(self.pixels.normalize(batch), tta=tta) if len(batch) else [])
            for i in indices:
                yield (i, None, errors[i]) if i in errors else (i, next(probs), None)

    def predict_files(
        self, paths: Sequence[Path], *, top_k: int = 3, batch_size: int = 32, workers: int = 2
    ) -> Iterator[tuple[Path, Prediction | None, str | None]]:
        """(path, prediction, error) for each file, in order (see `file_probabilities`)."""
        for i, probs, error in self.file_probabilities(paths, batch_size=batch_size, workers=workers):
            yield paths[i], None if probs is None else self._decode(probs[None], top_k)[0], error

    def timeline(
        self, source: str | Path | BinaryIO, *, window: float = 2.0, stride: float = 1.0, top_k: int = 3,
        batch_size: int = 8,
    ) -> list[Segment]:  # fmt: skip
        """Slide a `window`-second window over a clip in `stride` steps; one prediction per window."""
        if not self.pixels.frames:
            raise ActiscopeError(
                f"{self.meta.architecture} is an image model; --timeline needs a video model"
            )
        if window <= 0 or stride <= 0:
            raise ActiscopeError(f"the window ({window} s) and stride ({stride} s) must be positive")
        info = probe_video(source)
        # Two decoded frames per model frame and window are enough: a long clip is not kept at full rate.
        every = max(1, round(info.fps * window / (2 * self.pixels.frames)))
        clip = read_clip(source, self.pixels.image_size, None, every=every)
        duration = max(info.duration, float(clip.times[-1]) + 1 / info.fps)
        spans = windows(duration, window, stride)
        segments: list[Segment] = []
        for first in range(0, len(spans), batch_size):
            chunk = spans[first : first + batch_size]
            batch = np.stack([
                window_frames(clip, start, end, self.pixels.frames).transpose(0, 3, 1, 2) for start, end in chunk
            ])  # fmt: skip
            for (start, end), prediction in zip(
                chunk, self._decode(self.probabilities(self.pixels.normalize(batch)), top_k), strict=True
            ):
                segments.append(Segment(start, end, prediction))
        return segments

    def _decode(self, probs: np.ndarray, top_k: int) -> list[Prediction]:
        k = max(1, min(top_k, len(self.class_names)))
        order = np.argsort(-probs, axis=1)[:, :k]
        results = []
        for row, idx in zip(probs, order, strict=True):
            ranked = [(self.class_names[i], float(row[i])) for i in idx]
            results.append(Prediction(ranked[0][0], ranked[0][1], ranked))
        return results


def decoded_batches(
    paths: Sequence[Path], pixels: Preprocessor, batch_size: int = 32, workers: int = 2
) -> Iterator[tuple[list[int], np.ndarray, dict[int, str]]]:
    """(indices, uint8 pixels of the readable files, {index: error}) per batch of `paths`, in order.

    `workers` processes decode at the lowest CPU priority, at most two batches each ahead: inference
    keeps the cores it needs, decoding takes what it leaves, and memory stays bounded however many
    files there are. They write into memory shared with this process, so no pixels are pickled through
    a pipe. 0 (or a system without fork) decodes here, between batches. A standard-library process pool
    rather than torch's DataLoader, which would import torch (2.7 s of start-up here) for an ONNX model.
    """
    jobs = ((start, list(paths[start : start + batch_size])) for start in range(0, len(paths), batch_size))
    if workers <= 0 or "fork" not in multiprocessing.get_all_start_methods():
        for start, chunk in jobs:
            out = np.empty((len(chunk), *pixels.shape), np.uint8)
            count, errors = _decode_into(out, pixels, start, chunk)
            yield list(range(start, start + len(chunk))), out[:count], errors
        return
    ahead = 2 * workers
    slots = _Slots(ahead + 1, batch_size, pixels.shape)  # the batches in flight and the one being taken
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker, initargs=(slots,)
    )
    pending: deque[tuple[int, int, int, Future]] = deque()
    try:
        for n, (start, chunk) in enumerate(jobs):
            slot = n % (ahead + 1)
            pending.append(
                (start, len(chunk), slot, pool.submit(_decode_in_slot, slot, pixels, start, chunk))
            )
            if len(pending) > ahead:
                yield _take(pending.popleft(), slots)
        while pending:
            yield _take(pending.popleft(), slots)
    except BrokenProcessPool:
        raise ActiscopeError(
            "a decoding process died (out of memory?); run again with fewer --workers or --workers 0"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Slots:
    """`count` batches of uint8 pixels in anonymous shared memory, inherited by forked processes."""

    def __init__(self, count: int, batch_size: int, shape: tuple[int, ...]) -> None:
        self.shape = (count, batch_size, *shape)
        self.memory = mmap.mmap(-1, int(np.prod(self.shape)))  # pages are committed only when written

    def batch(self, slot: int) -> np.ndarray:
        return np.frombuffer(self.memory, np.uint8).reshape(self.shape)[slot]


_worker_slots: _Slots | None = None  # set in each decoding process


def _start_worker(slots: _Slots) -> None:
    """A decoding process: lowest priority, and Ctrl-C is for the parent (which shuts the pool down)."""
    global _worker_slots
    _worker_slots = slots
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(19)


def _decode_in_slot(
    slot: int, pixels: Preprocessor, start: int, paths: list[Path]
) -> tuple[int, dict[int, str]]:
    assert _worker_slots is not None
    return _decode_into(_worker_slots.batch(slot), pixels, start, paths)


def _decode_into(
    out: np.ndarray, pixels: Preprocessor, start: int, paths: list[Path]
) -> tuple[int, dict[int, str]]:
    """Decode `paths` into the first rows of `out`; (how many were readable, {index: error})."""
    count, errors = 0, {}
    for i, path in enumerate(paths, start):
        try:
            out[count] = pixels.pixels_uint8(path)
            count += 1
        except MediaReadError as exc:
            errors[i] = exc.reason
    return count, errors


def _take(job: tuple[int, int, int, Future], slots: _Slots) -> tuple[list[int], np.ndarray, dict[int, str]]:
    start, size, slot, future = job
    count, errors = future.result()
    # A copy: the slot is written again as soon as the next batch is asked for.
    return list(range(start, start + size)), slots.batch(slot)[:count].copy(), errors


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


def onnx_session(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """An ONNX Runtime session on the CPU as a function: float32 batch -> logits."""
    if not path.is_file():
        how = "--format onnx --quantize int8" if path.name == INT8_FILE else "--format onnx"
        raise ActiscopeError(f"{path}: not in the package; create it with `actiscope export MODEL {how}`")
    try:
        import onnxruntime as ort
    except ImportError:
        raise ActiscopeError("the onnx backend needs onnxruntime (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = inference_threads()
    # Threads spin inside a run (fast) but not after it: the cores go to decoding and other requests.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


class TorchRunner:
    """The package's PyTorch model as a function: float32 batch -> logits, channels_last, in the
    precision `hardware.choose_precision` picks for inference with this architecture on this CPU
    (`bf16` True/False forces it). `choice` says which and why."""

    def __init__(self, path: str | Path, bf16: bool | None = None) -> None:
        import torch

        from actiscope.hardware import choose_precision, default_probe_cache
        from actiscope.models.registry import example_input

        model, _ = load_package(path)
        if inference_threads():
            torch.set_num_threads(inference_threads())
        self.model = model.to_channels_last().eval()
        requested = "auto" if bf16 is None else ("bf16" if bf16 else "32")
        example = example_input(model.data_config, 8)
        self.choice = choose_precision(requested, "cpu", model=self.model, example=example, training=False,
                                       cache=default_probe_cache())  # fmt: skip
        log.info(self.choice.line("PyTorch inference"))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        pixels = torch.from_numpy(batch)
        if pixels.ndim == 4:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.choice.bf16):
            return self.model(pixels).float().numpy()


def inference_threads() -> int:
    """Threads per inference session from ACTISCOPE_INFERENCE_THREADS (0: the library's default, all
    cores). `actiscope serve` sets it to cores / workers, so worker processes do not fight over cores."""
    value = os.environ.get("ACTISCOPE_INFERENCE_THREADS", "0")
    return int(value) if value.isdigit() else 0


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # as given: the CSV's filename cell, or the path
    error: str | None = None  # known before decoding (a CSV row naming a missing file)


LIST_SUFFIXES = (".txt", ".lst")


def collect_inputs(inputs: Sequence[str | Path], kind: str = "image") -> tuple[list[InputFile], list[Path]]:
    """Expand files, folders (recursively), CSVs with a filename column and list files into the files
    to predict; also return the files skipped in folders because they are not images (for a video
    model: clips) by extension."""
    from actiscope.data.formats import read_csv
    from actiscope.data.images import is_image_path
    from actiscope.data.video import is_video_path

    wanted = is_video_path if kind == "video" else is_image_path

    files: list[InputFile] = []
    skipped: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if not path.exists():
            raise ActiscopeError(f"{path}: no such file or folder")
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                if wanted(found):
                    files.append(InputFile(found, str(found)))
                else:
                    skipped.append(found)
        elif path.suffix.lower() == ".csv":
            dataset = read_csv(path)
            files += [InputFile(s.path, s.name or str(s.path)) for s in dataset.samples]
            files += [
                InputFile(path.parent / m.filename, m.filename, "file not found") for m in dataset.missing
            ]
        elif path.suffix.lower() in LIST_SUFFIXES:
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    listed = Path(line.strip())
                    listed = listed if listed.is_absolute() else path.parent / listed
                    files.append(
                        InputFile(listed, line.strip(), None if listed.is_file() else "file not found")
                    )
        else:
            files.append(InputFile(path, str(path)))
    return files, skipped


def predict_rows(
    predictor: Predictor,
    files: Sequence[InputFile],
    *,
    top_k: int = 3,
    batch_size: int = 32,
    workers: int = 2,
    progress: object = None,
) -> list[dict[str, object]]:
    """One row per input file, in order: filename, label, confidence, the next top-k, error."""
    rows: dict[int, dict[str, object]] = {}
    todo = [i for i, f in enumerate(files) if f.error is None]
    for i, f in enumerate(files):
        if f.error is not None:
            rows[i] = {"filename": f.name, "error": f.error}
    paths = [files[i].path for i in todo]
    results = predictor.predict_files(paths, top_k=top_k, batch_size=batch_size, workers=workers)
    for i, (_, prediction, error) in zip(todo, results, strict=True):
        row: dict[str, object] = {"filename": files[i].name}
        if prediction is None:
            row["error"] = error
        else:
            row |= prediction_row(prediction)
        rows[i] = row
        if progress is not None:
            progress.update(1)  # type: ignore[attr-defined]
    return [rows[i] for i in range(len(files))]


def prediction_row(prediction: Prediction) -> dict[str, object]:
    """label, confidence and the next classes of the top-k, as CSV columns."""
    row: dict[str, object] = {"label": prediction.label, "confidence": round(prediction.confidence, 6)}
    for rank, (label, prob) in enumerate(prediction.top_k[1:], start=2):
        row |= {f"top{rank}_label": label, f"top{rank}_confidence": round(prob, 6)}
    return row


def timeline_rows(
    predictor: Predictor, files: Sequence[InputFile], *, window: float, stride: float, top_k: int = 3
) -> list[dict[str, object]]:
    """One row per window of each clip (filename, start, end, label, ...); a bad clip gets an error row."""
    rows: list[dict[str, object]] = []
    for f in files:
        try:
            if f.error is not None:
                raise VideoReadError(f.name, f.error)
            segments = predictor.timeline(f.path, window=window, stride=stride, top_k=top_k)
        except MediaReadError as exc:
            rows.append({"filename": f.name, "error": exc.reason})
            continue
        rows += [{"filename": f.name, "start": s.start, "end": s.end, **prediction_row(s.prediction)}
                 for s in segments]  # fmt: skip
    return rows


def write_predictions_csv(
    rows: Sequence[dict[str, object]], path: Path, *, top_k: int, submission: bool = False,
    timeline: bool = False,
) -> None:  # fmt: skip
    """The CSV is written to a temporary file and renamed: an interrupted run leaves no partial file."""
    import csv

    from actiscope.files import atomic_output

    columns = ["filename", *(("start", "end") if timeline else ()), "label"]
    if not submission:
        columns += ["confidence"]
        for rank in range(2, top_k + 1):
            columns += [f"top{rank}_label", f"top{rank}_confidence"]
        columns += ["error"]
    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
