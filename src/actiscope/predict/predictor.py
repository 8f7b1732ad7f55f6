"""The one Predictor: a model package in, top-k classes with probabilities out. The CLI, evaluation and
the web app all use it, with the preprocessing recorded in model.json (see preprocess.py).

An ensemble package loads like any other: its members share one input, so each image is decoded once,
and its runtime (one network in PyTorch, one graph in ONNX) returns the log of the members' mean
probabilities, whose softmax is that mean (models.ensemble)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from actiscope.data.images import Box
from actiscope.data.transforms import hflip_tta
from actiscope.data.video import VideoLimits, probe_video, read_clip, window_frames, windows
from actiscope.errors import ActiscopeError
from actiscope.package import PackageMeta, package_dir, read_meta
from actiscope.predict.backends import BACKENDS, Backend, choose_backend, load_backend, softmax
from actiscope.predict.pool import decoded_batches
from actiscope.predict.preprocess import ImageInput, Preprocessor


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


class Predictor:
    """Load once, predict many: `Predictor.load(MODEL, backend="torch"|"onnx")`."""

    def __init__(
        self, meta: PackageMeta, runtime: Backend, *, backend: str, video_limits: VideoLimits | None = None
    ) -> None:
        self.meta, self.runtime, self.backend = meta, runtime, backend  # backend: the runtime's name
        self.class_names = meta.class_names
        self.preprocess = Preprocessor(meta, video_limits=video_limits)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        backend: str = "auto",
        *,
        bf16: bool | None = None,
        threads: int | None = None,
        video_limits: VideoLimits | None = None,
    ) -> Predictor:
        """backend "auto": the int8 ONNX model if its recorded accuracy check passed, else the fp32 ONNX
        model, else PyTorch (see `choose_backend`). `bf16` forces the PyTorch backend's precision;
        `threads` caps the runtime's threads (None: its default, all cores); `video_limits` bound the
        clips it reads (None: `VideoLimits()`). `path`: a package, a run directory, or a path-like of one
        (actiscope.api.Run)."""
        if backend not in BACKENDS:
            raise ActiscopeError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        directory = package_dir(Path(path))
        meta = read_meta(directory)
        if backend == "auto":
            backend = choose_backend(directory, meta)
        runtime = load_backend(directory, backend, bf16=bf16, threads=threads)
        return cls(meta, runtime, backend=backend, video_limits=video_limits)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """The model's logits for a normalised NCHW (clips: NTCHW) float32 batch."""
        return self.runtime(np.ascontiguousarray(batch, dtype=np.float32))

    def probabilities(self, batch: np.ndarray, *, tta: bool = False) -> np.ndarray:
        """Class probabilities for a normalised NCHW (clips: NTCHW) float32 batch; `tta` averages in
        the mirrored image. A CPU tensor is taken too."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        probs = softmax(self.logits(batch))
        if tta:
            probs = (probs + softmax(self.logits(hflip_tta(batch)))) / 2
        return probs

    @property
    def crops_person(self) -> bool:
        """Whether the model was trained on person crops: it wants each image's person box."""
        return self.meta.person_crop is not None and self.meta.kind == "image"

    def predict(
        self,
        inputs: Sequence[ImageInput],
        *,
        top_k: int = 3,
        batch_size: int = 32,
        tta: bool = False,
        boxes: Sequence[Box | None] | None = None,
    ) -> list[Prediction]:
        """Predict in-memory images/clips or files; a bad file raises MediaReadError naming it. `boxes`:
        each input's person box (None where none is known), used if the model was trained on crops."""
        boxed = list(boxes) if boxes is not None else [None] * len(inputs)
        if len(boxed) != len(inputs):
            raise ValueError(f"{len(boxed)} boxes for {len(inputs)} inputs")
        out: list[Prediction] = []
        for start in range(0, len(inputs), batch_size):
            chunk = zip(inputs[start : start + batch_size], boxed[start : start + batch_size], strict=True)
            batch = np.stack([self.preprocess(item, box) for item, box in chunk])
            out += self._rank(self.probabilities(batch, tta=tta), top_k)
        return out

    def file_probabilities(
        self,
        paths: Sequence[Path],
        *,
        batch_size: int = 32,
        workers: int = 2,
        tta: bool = False,
        boxes: Sequence[Box | None] | None = None,
    ) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        """(index, probabilities, error) for each file, in order. Decoding runs in `workers` background
        processes in parallel with inference (see `pool.decoded_batches`), and an unreadable file yields
        its error instead of stopping the run. `boxes`: as in `predict`."""
        batches = decoded_batches(paths, self.preprocess, batch_size, workers, boxes=boxes)
        for indices, batch, errors in batches:
            probs = iter(self.probabilities(self.preprocess.normalize(batch), tta=tta) if len(batch) else [])
            for i in indices:
                yield (i, None, errors[i]) if i in errors else (i, next(probs), None)

    def predict_files(
        self,
        paths: Sequence[Path],
        *,
        top_k: int = 3,
        batch_size: int = 32,
        workers: int = 2,
        boxes: Sequence[Box | None] | None = None,
    ) -> Iterator[tuple[Path, Prediction | None, str | None]]:
        """(path, prediction, error) for each file, in order (see `file_probabilities`)."""
        results = self.file_probabilities(paths, batch_size=batch_size, workers=workers, boxes=boxes)
        for i, probs, error in results:
            yield paths[i], None if probs is None else self._rank(probs[None], top_k)[0], error

    def timeline(
        self,
        source: str | Path | BinaryIO,
        *,
        window: float = 2.0,
        stride: float = 1.0,
        top_k: int = 3,
        batch_size: int = 8,
    ) -> list[Segment]:
        """Slide a `window`-second window over a clip in `stride` steps; one prediction per window."""
        frames, limits = self.preprocess.frames, self.preprocess.video_limits
        if not frames:
            raise ActiscopeError(
                f"{self.meta.architecture} is an image model; --timeline needs a video model"
            )
        if window <= 0 or stride <= 0:
            raise ActiscopeError(f"the window ({window} s) and stride ({stride} s) must be positive")
        info = probe_video(source, limits)
        # Two decoded frames per model frame and window are enough: a long clip is not kept at full rate.
        every = max(1, round(info.fps * window / (2 * frames)))
        clip = read_clip(source, self.preprocess.image_size, None, every=every, limits=limits)
        duration = max(info.duration, float(clip.times[-1]) + 1 / info.fps)
        spans = windows(duration, window, stride)
        segments: list[Segment] = []
        for first in range(0, len(spans), batch_size):
            chunk = spans[first : first + batch_size]
            batch = np.stack(
                [window_frames(clip, start, end, frames).transpose(0, 3, 1, 2) for start, end in chunk]
            )
            ranked = self._rank(self.probabilities(self.preprocess.normalize(batch)), top_k)
            segments += [Segment(start, end, p) for (start, end), p in zip(chunk, ranked, strict=True)]
        return segments

    def _rank(self, probs: np.ndarray, top_k: int) -> list[Prediction]:
        """Each row of class probabilities as a Prediction of its `top_k` classes, best first."""
        k = max(1, min(top_k, len(self.class_names)))
        order = np.argsort(-probs, axis=1)[:, :k]
        results = []
        for row, idx in zip(probs, order, strict=True):
            ranked = [(self.class_names[i], float(row[i])) for i in idx]
            results.append(Prediction(ranked[0][0], ranked[0][1], ranked))
        return results
