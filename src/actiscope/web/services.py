"""The web app's work, kept out of the views: read uploads safely, predict with the one Predictor, store
predictions, and find runs. The model is loaded lazily, once per worker process, on the first request."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from PIL import Image

from actiscope.data.images import load_image
from actiscope.data.video import VIDEO_EXTENSIONS, probe_video
from actiscope.errors import ActiscopeError, MediaReadError
from actiscope.package import META_FILE, describe_weights, package_dir, read_meta
from actiscope.predict import Predictor
from actiscope.web.classify.models import ActiveModel, Prediction


class ServiceError(Exception):
    """A request the service cannot do: `status` and a one-line message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Upload:
    name: str  # as the client sent it: displayed only
    data: bytes
    image: Image.Image | None  # None for a clip
    extension: str

    def source(self) -> Image.Image | io.BytesIO:
        """What the Predictor reads: the decoded image, or the clip's bytes."""
        return self.image if self.image is not None else io.BytesIO(self.data)


def check_count(files: list[Any]) -> None:
    if not files:
        raise ServiceError(
            400, "no file: send an image (or a clip, for a video model) in the form field 'file'"
        )
    if len(files) > settings.MAX_FILES:
        raise ServiceError(
            400, f"too many files: {len(files)} in one request; the limit is {settings.MAX_FILES}"
        )


def read_uploads(files: list[Any], kind: str = "image") -> list[Upload]:
    """Every file checked before anything is stored: count, size, and a safe decode (a clip: its header
    and limits; the Predictor then decodes it through the same checks)."""
    check_count(files)
    limit = settings.MAX_CLIP_BYTES if kind == "video" else settings.MAX_UPLOAD_BYTES
    uploads = []
    for f in files:
        name = str(getattr(f, "name", "upload"))[:255]
        if f.size > limit:
            raise ServiceError(413, f"{name}: {f.size / 2**20:.1f} MB is over the "
                                    f"{limit / 2**20:.0f} MB upload limit")  # fmt: skip
        data = f.read()
        try:
            if kind == "video":
                probe_video(io.BytesIO(data))
                suffix = Path(name).suffix.lower()
                uploads.append(Upload(name, data, None, suffix[1:] if suffix in VIDEO_EXTENSIONS else "mp4"))
                continue
            image = load_image(io.BytesIO(data))
            with Image.open(io.BytesIO(data)) as probe:
                extension = (probe.format or "img").lower().replace("jpeg", "jpg")
        except MediaReadError as exc:
            hint = " (the active model classifies clips: upload a video)" if kind == "video" else ""
            raise ServiceError(400, f"{name}: {exc.reason}{hint}") from None
        uploads.append(Upload(name, data, image, extension))
    return uploads


class ModelService:
    """The Predictor of the active model, loaded on first use in each process and reloaded when the
    active model changes. Active: the one chosen on the dashboard, else --model, else the newest run
    (found once per process, so a request does not scan the runs folder)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._predictor: Predictor | None = None
        self._name = ""
        self._newest: Path | None = None

    def active_path(self) -> Path | None:
        row = ActiveModel.objects.first()
        if row is not None:
            return Path(row.path)
        if settings.ACTISCOPE_MODEL:
            return Path(settings.ACTISCOPE_MODEL)
        if self._newest is None:
            runs = [r for r in list_runs() if r["has_model"]]
            self._newest = Path(max(runs, key=lambda r: r["modified"])["path"]) if runs else None
        return self._newest

    def get(self) -> Predictor:
        path = self.active_path()
        if path is None:
            raise ServiceError(
                503, f"no model to serve: train one into {settings.RUNS_DIR} or start with --model"
            )
        with self._lock:
            if self._predictor is None or path != self._path:
                try:
                    self._predictor = Predictor.load(path)
                    directory = package_dir(path)
                except ActiscopeError as exc:
                    raise ServiceError(503, f"the active model cannot be loaded: {exc}") from None
                run = directory.parent.name if directory.name == "model" else directory.name
                self._path, self._name = path, f"{run} ({self._predictor.meta.architecture})"
            return self._predictor

    def active_kind(self) -> str:
        """ "image" or "video": what the active model takes (read from model.json, no model load)."""
        path = self.active_path()
        try:
            return read_meta(path).kind if path is not None else "image"
        except ActiscopeError:
            return "image"

    def describe(self, predictor: Predictor) -> tuple[str, str]:
        """The name and version stored with each prediction."""
        return self._name, predictor.meta.created


MODEL = ModelService()


def classify(files: list[Any], top_k: int = 5) -> list[Prediction]:
    """Predict and store every upload, or none of them: files and rows are removed on any failure."""
    check_count(files)  # before loading a model
    predictor = MODEL.get()
    uploads = read_uploads(files, predictor.meta.kind)
    model_name, version = MODEL.describe(predictor)
    results = []
    for upload in uploads:
        start = time.perf_counter()
        try:
            (prediction,) = predictor.predict([upload.source()], top_k=top_k)
            timeline = None
            if upload.image is None:
                timeline = [[s.start, s.end, s.prediction.label, round(s.prediction.confidence, 6)]
                            for s in predictor.timeline(upload.source(), top_k=1)]  # fmt: skip
        except MediaReadError as exc:  # a clip whose header was fine but whose frames are not
            raise ServiceError(400, f"{upload.name}: {exc.reason}") from None
        results.append((upload, prediction, timeline, (time.perf_counter() - start) * 1000))
    media = Path(settings.MEDIA_ROOT)
    media.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        with transaction.atomic():
            rows = []
            for upload, prediction, timeline, latency in results:
                stored = media / f"{uuid.uuid4().hex}.{upload.extension}"
                stored.write_bytes(upload.data)
                written.append(stored)
                rows.append(Prediction.objects.create(
                    image=stored.name, original_name=upload.name, model_name=model_name, model_version=version,
                    label=prediction.label, confidence=prediction.confidence,
                    top_k=[[label, round(p, 6)] for label, p in prediction.top_k], latency_ms=round(latency, 2),
                    timeline=timeline,
                ))  # fmt: skip
        return rows
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def delete_prediction(row: Prediction) -> None:
    with transaction.atomic():
        row.delete()
    (Path(settings.MEDIA_ROOT) / row.image).unlink(missing_ok=True)


def image_path(row: Prediction) -> Path:
    return Path(settings.MEDIA_ROOT) / Path(row.image).name


# -- runs -----------------------------------------------------------------------------------------------
def _run_dirs() -> list[Path]:
    root = Path(settings.RUNS_DIR)
    if not root.is_dir():
        return []
    found = []
    for candidate in [*root.glob("*"), *root.glob("*/runs/*")]:  # plain runs, and runs inside a compare
        if candidate.is_dir() and (
            (candidate / "config.yaml").is_file() or (candidate / "model" / META_FILE).is_file()
        ):
            found.append(candidate)
    return sorted(found)


def run_name(path: Path) -> str:
    return str(path.relative_to(Path(settings.RUNS_DIR))).replace("/runs/", "--")


def list_runs() -> list[dict[str, Any]]:
    return [run_summary(path) for path in _run_dirs()]


def find_run(name: str) -> Path | None:
    return next((p for p in _run_dirs() if run_name(p) == name), None)


def run_summary(path: Path) -> dict[str, Any]:
    has_model = (path / "model" / META_FILE).is_file()
    metrics: dict[str, Any] = {}
    architecture = weights = ""
    if has_model:
        try:
            meta = read_meta(path / "model")
            metrics, architecture, weights = meta.metrics, meta.architecture, describe_weights(meta.weights)
        except ActiscopeError:
            has_model = False
    history = path / "history.csv"
    modified = max(
        (p.stat().st_mtime for p in (history, path / "model" / META_FILE) if p.is_file()), default=0.0
    )
    return {
        "name": run_name(path), "path": str(path), "architecture": architecture, "has_model": has_model,
        "status": "finished" if has_model else ("training" if history.is_file() else "started"),
        "test_accuracy": metrics.get("test_acc"), "test_macro_f1": metrics.get("test_f1"),
        "epochs": metrics.get("epochs_trained"), "modified": modified,
        "has_eval": (path / "eval" / "metrics.json").is_file(), "starting_weights": weights,
    }  # fmt: skip


def run_metrics(path: Path) -> dict[str, Any] | None:
    file = path / "eval" / "metrics.json"
    try:
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, ValueError):
        return None
