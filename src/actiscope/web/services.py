"""The web app's work, kept out of the views: read uploads safely, predict with the one Predictor, store
and filter predictions, explain them, and read the runs (through RunDir, the owner of their layout). The
model is loaded lazily, once per worker process, on the first request. Values that come from the
environment (limits, threads) are read from settings, which alone reads the environment."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from PIL import Image

from actiscope.data.images import load_image
from actiscope.data.video import VIDEO_EXTENSIONS, probe_video, resize_frame
from actiscope.errors import ActiscopeError, MediaReadError
from actiscope.files import DISK_FULL, atomic_output
from actiscope.package import PackageMeta, check_weights, describe_weights, package_dir, read_meta
from actiscope.predict import Predictor
from actiscope.run import META_FILE, CompareDir, EvalDir, RunDir, TuneDir
from actiscope.web.admission import Admission, Busy
from actiscope.web.classify.models import ActiveModel, Prediction
from actiscope.web.live import BadSession, LiveWindows


class ServiceError(Exception):
    """A request the service cannot do: `status` and a one-line message for the client; `retry_after`
    (seconds) when trying again later will do (the Retry-After header)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


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
            raise ServiceError(
                413, f"{name}: {f.size / 2**20:.1f} MB is over the {limit / 2**20:.0f} MB upload limit"
            )
        data = f.read()
        try:
            if kind == "video":
                probe_video(io.BytesIO(data), settings.VIDEO_LIMITS)
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


@dataclass(frozen=True)
class ServedModel:
    """What each prediction records about the model that made it."""

    name: str  # "<run> (<architecture>)": displayed and filtered on
    version: str  # the package's creation time: a package retrained in place is another model
    package: Path  # the package directory, so that the prediction can be explained by its own model


class ModelService:
    """The Predictor of the active model, loaded on first use in each process and reloaded when the
    active model changes. Active: the one chosen on the dashboard, else --model, else the newest run
    (found once per process, so a request does not scan the runs folder)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._predictor: Predictor | None = None
        self._served: ServedModel | None = None
        self._newest: Path | None = None
        self._admission: Admission | None = None

    def active_path(self) -> Path | None:
        row = ActiveModel.objects.first()
        if row is not None:
            return Path(row.path)
        if settings.ACTISCOPE_MODEL:
            return Path(settings.ACTISCOPE_MODEL)
        if self._newest is None:
            runs = [r for r in list_runs() if r.has_model]
            self._newest = Path(max(runs, key=lambda r: r.modified).path) if runs else None
        return self._newest

    def serving(self) -> tuple[Predictor, ServedModel]:
        """The active model's Predictor and what identifies it, taken together (another request may
        change the active model in between)."""
        path = self.active_path()
        if path is None:
            raise ServiceError(
                503, f"no model to serve: train one into {settings.RUNS_DIR} or start with --model"
            )
        with self._lock:
            if self._predictor is None or self._served is None or path != self._path:
                try:
                    self._use(path, _load(path))
                except ActiscopeError as exc:
                    raise ServiceError(503, f"the active model cannot be loaded: {exc}") from None
            assert self._predictor is not None and self._served is not None  # set by _use
            return self._predictor, self._served

    def adopt(self, path: Path, predictor: Predictor) -> None:
        """Serve `predictor`, loaded from `path` (just checked), from now on in this process."""
        with self._lock:
            self._use(path, predictor)

    def _use(self, path: Path, predictor: Predictor) -> None:
        directory = package_dir(path).resolve()
        in_run = directory == RunDir(directory.parent).model
        name = f"{directory.parent.name if in_run else directory.name} ({predictor.meta.architecture})"
        self._path, self._predictor = path, predictor
        self._served = ServedModel(name, predictor.meta.created, directory)

    def admission(self) -> Admission:
        """This process's limit on predictions at once (admission.py), made on first use from settings."""
        with self._lock:
            if self._admission is None:
                self._admission = Admission(settings.PREDICT_CAPACITY)
            return self._admission

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """A prediction slot of this process for the block, or a 503 with Retry-After."""
        admission = self.admission()
        with _busy_is_503():
            admission.acquire()
        try:
            yield
        finally:
            admission.release()

    def refuse_when_full(self) -> None:
        """A 503 with Retry-After at once when this process has no room for a prediction: views call
        it before they read the upload."""
        with _busy_is_503():
            self.admission().refuse_when_full()

    def get(self) -> Predictor:
        return self.serving()[0]

    def active_kind(self) -> str:
        """ "image" or "video": what the active model takes (read from model.json, no model load)."""
        path = self.active_path()
        try:
            return read_meta(path).kind if path is not None else "image"
        except ActiscopeError:
            return "image"


MODEL = ModelService()


@contextmanager
def _busy_is_503() -> Iterator[None]:
    try:
        yield
    except Busy as exc:
        raise ServiceError(503, exc.message, retry_after=exc.retry_after) from None


def _load(path: Path) -> Predictor:
    return Predictor.load(
        path,
        backend=settings.INFERENCE_BACKEND,
        threads=settings.INFERENCE_THREADS or None,
        video_limits=settings.VIDEO_LIMITS,
    )


def check_package(path: Path) -> Predictor:
    """The package at `path` loaded as it would be served, and proved whole before it is: its weights
    file (its header, its length, the architecture it names), the backend that serves it, and one
    prediction of one finite logit per class. A damaged or tampered package raises ActiscopeError in
    one line."""
    directory = package_dir(path)
    try:
        predictor = _load(path)
        meta = predictor.meta
        check_weights(directory, meta)
        size = meta.image_size
        shape = (1, meta.frames or 1, 3, size, size) if meta.kind == "video" else (1, 3, size, size)
        logits = predictor.logits(np.zeros(shape, np.float32))
    except ActiscopeError:
        raise
    # any other error is the runtime's own for a model it cannot run (ONNX Runtime's are plain Exceptions)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ActiscopeError(
            f"{directory}: the model does not run as its model.json describes ({first}); "
            "export the package again from its run"
        ) from None
    if logits.shape != (1, len(meta.class_names)) or not np.isfinite(logits).all():
        raise ActiscopeError(
            f"{directory}: the model gives {logits.shape[-1]} outputs for the {len(meta.class_names)} "
            "classes its model.json names; export the package again from its run"
        )
    return predictor


# -- predictions ----------------------------------------------------------------------------------------
def upload_note(meta: PackageMeta) -> str:
    """What an upload is given to the model as, when that is not what it was trained on: no person box
    is known for an upload, so a model trained on person crops gets the whole image. "" otherwise."""
    if meta.person_crop is None or meta.kind != "image":
        return ""
    return (
        f"this model expects a person crop (it was trained on images cropped to the person box, margin "
        f"{meta.person_crop:g}); no box is known for an upload, so the whole image was used"
    )


def classify(files: list[Any], top_k: int = 5) -> list[Prediction]:
    """Predict and store every upload, or none of them: files and rows are removed on any failure."""
    check_count(files)  # before loading a model
    with MODEL.admitted():
        return _classify(files, top_k)


def _classify(files: list[Any], top_k: int) -> list[Prediction]:
    predictor, served = MODEL.serving()
    uploads = read_uploads(files, predictor.meta.kind)
    results = []
    for upload in uploads:
        start = time.perf_counter()
        try:
            (prediction,) = predictor.predict([upload.source()], top_k=top_k)
            timeline = None
            if upload.image is None:
                timeline = [
                    [s.start, s.end, s.prediction.label, round(s.prediction.confidence, 6)]
                    for s in predictor.timeline(io.BytesIO(upload.data), top_k=1)
                ]
        except MediaReadError as exc:  # a clip whose header was fine but whose frames are not
            raise ServiceError(400, f"{upload.name}: {exc.reason}") from None
        results.append((upload, prediction, timeline, (time.perf_counter() - start) * 1000))
    return _store(results, served, upload_note(predictor.meta))


def _store(
    results: list[tuple[Upload, Any, Any, float]], served: ServedModel, note: str = ""
) -> list[Prediction]:
    """The uploads and their rows, all or none: files are removed on any failure, and each is written
    whole or not at all (a worker killed mid-write leaves no file under an upload's name)."""
    media = Path(settings.MEDIA_ROOT)
    media.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        with transaction.atomic():
            rows = []
            for upload, prediction, timeline, latency in results:
                stored = media / f"{uuid.uuid4().hex}.{upload.extension}"
                try:
                    with atomic_output(stored) as partial:
                        partial.write_bytes(upload.data)
                except OSError as exc:
                    if exc.errno not in DISK_FULL:
                        raise
                    raise ServiceError(
                        507, f"no space left in {media} to store {upload.name}; nothing was stored"
                    ) from None
                written.append(stored)
                rows.append(
                    Prediction.objects.create(
                        image=stored.name,
                        original_name=upload.name,
                        model_name=served.name,
                        model_version=served.version,
                        model_path=str(served.package),
                        label=prediction.label,
                        confidence=prediction.confidence,
                        timeline=timeline,
                        latency_ms=round(latency, 2),
                        top_k=[[label, round(p, 6)] for label, p in prediction.top_k],
                        input_note=note,
                    )
                )
        return rows
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class LiveAnswer:
    top: list[tuple[str, float]] | None  # None while a video model's window is still filling
    latency_ms: float
    saved: int | None  # the History row, when the frame was saved
    window: tuple[int, int] | None = None  # a video model: (frames in the window, frames the model takes)
    note: str = ""  # upload_note: a model trained on person crops was given the whole frame


def live_frame(frame: Any, *, save: bool = False, top_k: int = 5, session: str = "") -> LiveAnswer:
    """One camera frame: checked like an upload, predicted, and stored only when `save` is asked.
    For a video model the frame joins `session`'s sliding window (web.live), and the answer is the
    prediction of the window's clip once it holds as many frames as the model takes."""
    predictor, served = MODEL.serving()
    with MODEL.admitted():
        (upload,) = read_uploads([frame], "image")
        start = time.perf_counter()
        window = None
        source: Any = upload.source()
        if predictor.meta.kind == "video":
            need, size = int(predictor.preprocess.frames or 1), predictor.preprocess.image_size
            assert upload.image is not None  # read as an image above
            pixels = resize_frame(np.asarray(upload.image.convert("RGB")), size)
            try:
                source = _live_windows().push(session, f"{served.package}@{served.version}", pixels, need)
            except BadSession as exc:
                raise ServiceError(400, str(exc)) from None
            window = (len(source), need)
            if len(source) < need:
                return LiveAnswer(None, round((time.perf_counter() - start) * 1000, 2), None, window)
        (prediction,) = predictor.predict([source], top_k=top_k)
        latency = (time.perf_counter() - start) * 1000
        note = upload_note(predictor.meta)
        saved = _store([(upload, prediction, None, latency)], served, note)[0].pk if save else None
    top = [(label, round(p, 6)) for label, p in prediction.top_k]
    return LiveAnswer(top, round(latency, 2), saved, window, note)


def _live_windows() -> LiveWindows:
    return LiveWindows(Path(settings.DATA_DIR) / "live")


def predictions(label: str = "", model: str = "") -> QuerySet[Prediction]:
    """The stored predictions, newest first, of one class and/or one model ("" for all)."""
    rows = Prediction.objects.all()
    if label:
        rows = rows.filter(label=label)
    if model:
        rows = rows.filter(model_name=model)
    return rows


def history_choices() -> tuple[list[str], list[str]]:
    """The classes and the models the stored predictions have, for the history filters."""
    labels = Prediction.objects.order_by("label").values_list("label", flat=True).distinct()
    models = Prediction.objects.order_by("model_name").values_list("model_name", flat=True).distinct()
    return list(labels), list(models)


def _gradcam_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "gradcam"


def delete_prediction(row: Prediction) -> None:
    pk = row.pk
    with transaction.atomic():
        row.delete()
    (Path(settings.MEDIA_ROOT) / row.image).unlink(missing_ok=True)
    for overlay in _gradcam_dir().glob(f"{pk}-*.png"):
        overlay.unlink(missing_ok=True)


def image_path(row: Prediction) -> Path:
    return Path(settings.MEDIA_ROOT) / Path(row.image).name


def explanation(row: Prediction) -> Path:
    """The Grad-CAM overlay of a stored prediction's class, made once by the model that made the
    prediction (never by whichever model is active now) and cached under a name keyed on that model."""
    if not row.model_path:
        raise ServiceError(
            410,
            "Grad-CAM unavailable: this prediction was stored before the app recorded which model made it",
        )
    package = Path(row.model_path)
    key = hashlib.sha256(f"{package}\n{row.model_version}".encode()).hexdigest()[:16]
    cache = _gradcam_dir() / f"{row.pk}-{key}.png"
    if cache.is_file():
        return cache
    try:
        created = read_meta(package).created
    except ActiscopeError:
        raise ServiceError(
            410,
            f"Grad-CAM unavailable: {row.model_name}, the model that made this prediction, is gone from {package}",
        ) from None
    if row.model_version and created != row.model_version:
        raise ServiceError(
            410,
            f"Grad-CAM unavailable: {row.model_name}, the model that made this prediction, was replaced "
            f"at {package} by one made {created}",
        )
    from actiscope.explain import explain  # torch: only when an explanation is asked for

    cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        explain(package, image_path(row), out=cache, class_name=row.label)
    except ActiscopeError as exc:
        raise ServiceError(409, f"Grad-CAM unavailable: {exc}") from None
    return cache


# -- runs -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSummary:
    name: str
    path: str
    architecture: str
    has_model: bool
    status: str  # finished (a whole package), training (a history so far) or started
    test_accuracy: float | None
    test_macro_f1: float | None
    epochs: int | None
    modified: float  # the last write to its history or package, seconds since the epoch
    has_eval: bool
    starting_weights: str

    @property
    def run(self) -> RunDir:
        return RunDir(Path(self.path))


def _runs() -> list[RunDir]:
    return RunDir.find_all(settings.RUNS_DIR)


def run_name(run: RunDir) -> str:
    """A run's name in URLs: its folder, or <comparison>--<architecture> for a run inside a comparison."""
    parts = run.path.relative_to(Path(settings.RUNS_DIR)).parts
    return parts[0] if len(parts) == 1 else f"{parts[0]}--{run.name}"


def list_runs() -> list[RunSummary]:
    return [run_summary(run) for run in _runs()]


def find_run(name: str) -> RunDir | None:
    return next((run for run in _runs() if run_name(run) == name), None)


def run_summary(run: RunDir) -> RunSummary:
    has_model = run.has_model()
    metrics: dict[str, Any] = {}
    architecture = weights = ""
    if has_model:
        try:
            meta = read_meta(run.model)
            metrics, architecture = meta.metrics, meta.architecture
            weights = "its members' (an ensemble)" if meta.is_ensemble else describe_weights(meta.weights)
        except ActiscopeError:
            has_model = False
    modified = max(
        (p.stat().st_mtime for p in (run.history, run.model / META_FILE) if p.is_file()), default=0.0
    )
    return RunSummary(
        name=run_name(run),
        path=str(run.path),
        architecture=architecture,
        has_model=has_model,
        status="finished" if has_model else ("training" if run.history.is_file() else "started"),
        test_accuracy=metrics.get("test_acc"),
        test_macro_f1=metrics.get("test_f1"),
        epochs=metrics.get("epochs_trained"),
        modified=modified,
        has_eval=run.eval.metrics.is_file(),
        starting_weights=weights,
    )


def run_metrics(run: RunDir) -> dict[str, Any] | None:
    """The run's evaluation (metrics.json), or None when it has none or it cannot be read."""
    file = run.eval.metrics
    try:
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, ValueError):
        return None


def serves(run: RunDir, active: Path | None) -> bool:
    """Whether `active` (the active model's path) is this run or its package."""
    return active is not None and active in (run.path, run.model)


def activate(run: RunDir) -> None:
    """Make the run's package the one the app serves, once it is proved whole (`check_package`): a
    damaged one is refused in one line and the model served so far stays. This process serves the new
    one at once; the others load it on their next request."""
    if not run.has_model():
        raise ServiceError(404, "this run has no model package yet")
    try:
        predictor = check_package(run.model)
    except ActiscopeError as exc:
        raise ServiceError(422, f"not made active, the model served so far stays: {exc}") from None
    with transaction.atomic():
        ActiveModel.objects.all().delete()
        ActiveModel.objects.create(path=str(run.model))
    MODEL.adopt(run.model, predictor)


@dataclass(frozen=True)
class ModelEntry:
    run: str
    architecture: str
    path: str
    test_accuracy: float | None
    active: bool


def list_models() -> tuple[Path | None, list[ModelEntry]]:
    """The active model's path and every run's finished package."""
    active = MODEL.active_path()
    entries = [
        ModelEntry(r.name, r.architecture, str(r.run.model), r.test_accuracy, serves(r.run, active))
        for r in list_runs()
        if r.has_model
    ]
    return active, entries


def run_files(run: RunDir) -> dict[str, Path]:
    """The run files the dashboard serves, by their path inside the run (their name in URLs)."""
    paths = [run.curves, run.eval.report, run.eval.metrics, *(run.eval.plot(p) for p in EvalDir.PLOTS)]
    return {p.relative_to(run.path).as_posix(): p for p in paths}


def run_file(run: RunDir, name: str) -> Path:
    """One of `run_files`, if it is there."""
    path = run_files(run).get(name)
    if path is None:
        raise ServiceError(404, "not a run file the dashboard shows")
    if not path.is_file():
        raise ServiceError(404, f"{name} does not exist (yet)")
    return path


@dataclass(frozen=True)
class RunPage:
    summary: RunSummary
    metrics: dict[str, Any] | None
    curves: str | None  # names in run_files, of those that are there
    report: str | None
    plots: list[str]
    active: bool


def run_page(run: RunDir) -> RunPage:
    def shown(path: Path) -> str | None:
        return path.relative_to(run.path).as_posix() if path.is_file() else None

    plots = sorted(name for p in EvalDir.PLOTS if (name := shown(run.eval.plot(p))) is not None)
    return RunPage(
        run_summary(run),
        run_metrics(run),
        shown(run.curves),
        shown(run.eval.report),
        plots,
        serves(run, MODEL.active_path()),
    )


@dataclass(frozen=True)
class Leaderboard:
    name: str  # the comparison's folder
    rows: list[dict[str, str]]  # leaderboard.csv's rows, best first
    ensemble: str | None = None  # the run name of its ensemble package (served like a run), if it has one


def leaderboards() -> list[Leaderboard]:
    """Every comparison's leaderboard under the runs folder."""
    root = Path(settings.RUNS_DIR)
    boards = []
    for comparison in (CompareDir(p) for p in sorted(root.glob("*"))):
        if comparison.has_leaderboard():
            with comparison.leaderboard.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            ensemble = run_name(comparison.ensemble) if comparison.ensemble.has_model() else None
            boards.append(Leaderboard(comparison.path.name, rows, ensemble))
    return boards


@dataclass(frozen=True)
class Search:
    name: str  # the search's folder
    columns: list[str]  # leaderboard.csv's, as `actiscope tune` wrote them (the searched options vary)
    rows: list[list[str]]  # its trials, best first: one cell per column


def searches() -> list[Search]:
    """Every hyperparameter search's leaderboard of trials under the runs folder."""
    found = []
    for search in (TuneDir(p) for p in sorted(Path(settings.RUNS_DIR).glob("*"))):
        if search.has_leaderboard():
            with search.leaderboard.open(newline="", encoding="utf-8") as fh:
                table = list(csv.reader(fh))
            shown = [i for i, c in enumerate(table[0] if table else []) if c != "run"]  # a path on the server
            cells = [[row[i] if i < len(row) else "" for i in shown] for row in table]
            found.append(Search(search.path.name, cells[0] if cells else [], cells[1:]))
    return found


@dataclass(frozen=True)
class EvaluatedImage:
    filename: str
    label: str
    predicted: str
    confidence: float

    @property
    def wrong(self) -> bool:
        return self.label != self.predicted


def evaluated(run: RunDir) -> list[EvaluatedImage]:
    """The run's evaluated test images (predictions.csv), in its order; [] before an evaluation."""
    file = run.eval.predictions
    if not file.is_file():
        return []
    with file.open(newline="", encoding="utf-8") as fh:
        return [
            EvaluatedImage(r["filename"], r["label"], r["predicted"], float(r["confidence"]))
            for r in csv.DictReader(fh)
        ]
