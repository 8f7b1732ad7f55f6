"""The Python API, for notebooks and scripts: the verbs of the command line as functions with typed
keyword arguments, returning results that show themselves (an HTML table with the plots inline in a
notebook, one line in a console). The CLI is a thin layer over these functions: it parses, calls, prints.

    import actiscope
    from actiscope.api import evaluate, predict

    run = actiscope.train("data/har15", model="mobilenet_v2", weights="auto", epochs=5)
    evaluate(run)                           # metrics, per-class report, confusion matrix
    predict(run, ["photo.jpg"])             # one row per image

`actiscope.evaluate`, `actiscope.predict` and `actiscope.export` are subpackages, so those three verbs
are reached here (`actiscope.api.evaluate`); the root package re-exports the others. Importing this
package imports no torch (an ONNX prediction runs without it): the functions that train, compare or
export import the layers that need it.

arguments  the training options as typed keyword arguments (TrainArguments), checked at run time
results    Run, Evaluation, Comparison, Predictions, Inspection: what the verbs return
show       their HTML: small tables, the PNG plots inline
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from actiscope.api import show
from actiscope.api.arguments import (
    COMPARE_OWNS,
    CompareArguments,
    StrPath,
    TrainArguments,
    given_options,
)
from actiscope.api.results import Comparison, Evaluation, Inspection, Predictions, Run
from actiscope.errors import ActiscopeError
from actiscope.options import ConfigError, ModelOptions, TrainOptions
from actiscope.predict import (
    Predictor,
    Progress,
    boxes_for,
    collect_inputs,
    predict_rows,
    read_boxes,
    timeline_rows,
)

if TYPE_CHECKING:
    from actiscope.data.images import Box
    from actiscope.export import ExportResult

__all__ = [
    "CompareArguments",
    "Comparison",
    "Evaluation",
    "Inspection",
    "Predictions",
    "Predictor",
    "Run",
    "TrainArguments",
    "compare",
    "evaluate",
    "export",
    "inspect",
    "predict",
    "resolve_options",
    "train",
    "train_options",
]

log = logging.getLogger(__name__)


def resolve_options(
    data: StrPath | None, config: StrPath | None, given: dict[str, Any], skip: tuple[str, ...] = ()
) -> tuple[TrainOptions, list[str]]:
    """The options `given` (flat keys) over those of the `config` file (less `skip`) over the recipe that
    fits them, and the lines that say what was chosen. The one place `weights="auto"` is resolved:
    train, compare and the CLI's train all come here."""
    chosen: dict[str, Any] = {}
    if config is not None:
        from_file = TrainOptions.from_yaml(Path(config)).flat()
        chosen = {k: v for k, v in from_file.items() if k not in skip}
    chosen |= given
    path = os.fspath(data) if data is not None else chosen.get("data")
    chosen.pop("data", None)
    if path is None:
        raise ConfigError("give DATA (a dataset folder or CSV), or a --config file that names one")
    notes = []
    if chosen.get("weights") == "auto":
        from actiscope.models.weights import resolve_auto  # imports torch: only when asked for

        chosen["weights"], why = resolve_auto(chosen.get("model", ModelOptions.architecture))
        if why:
            notes.append(f"training from scratch: {why}")
    options, recipe = TrainOptions.recipe(str(path), scratch_recipe=bool(notes), **chosen)
    notes += [recipe] if recipe else []
    if "progressive" in options.from_recipe:  # what --print-config shows is what train runs
        from actiscope.engine.fit import fit_progressive  # builds the network: only when the recipe resizes

        options, dropped = fit_progressive(options)
        notes += [dropped] if dropped else []
    return options, notes


# -- train ---------------------------------------------------------------------------------------------
def train_options(
    data: StrPath | None = None,
    *,
    config: StrPath | None = None,
    resume: StrPath | None = None,
    **options: Unpack[TrainArguments],
) -> tuple[TrainOptions, list[str]]:
    """The options `train` would run with, and the lines that say what the recipe chose (what
    `actiscope train --print-config` shows): `options` over the `config` file (a run's config.yaml)
    over the recipe that fits them; or, with `resume`, that run's own options with `options` changed."""
    given = given_options(options, TrainArguments, "train_options")
    if resume is None:
        return resolve_options(data, config, given)
    if data is not None or config is not None:
        raise TypeError(
            "train_options(): resume= continues a run with its own options; give no data or config"
        )
    from actiscope.engine.fit import resume_config

    return resume_config(Path(resume), **given), []


def train(
    data: StrPath | TrainOptions | None = None,
    *,
    config: StrPath | None = None,
    resume: StrPath | None = None,
    announce: Sequence[str] = (),
    **options: Unpack[TrainArguments],
) -> Run:
    """Train a model into a run directory (with its package, and the ONNX files `predict` runs on):
    `actiscope train`. `data`: a dataset folder or CSV, the rest as in `train_options` (weights="auto":
    ImageNet where it can be had here, else from scratch, saying why); or TrainOptions as they are
    (`announce`: lines logged once they are checked, such as train_options' notes). `resume`: a run
    (or its directory) to continue, e.g. with more `epochs`."""
    from actiscope.workflows import train as train_run

    if isinstance(data, TrainOptions):
        if config is not None:
            raise TypeError("train(): give TrainOptions or a config file, not both")
        given = given_options(options, TrainArguments, "train")
        resolved = data.override(**given) if given else data
    else:
        resolved, notes = train_options(data, config=config, resume=resume, **options)
        announce = [*notes, *announce]
    return Run(train_run(resolved, resume=None if resume is None else Path(resume), announce=announce))


# -- compare -----------------------------------------------------------------------------------------
def compare(
    data: StrPath | TrainOptions,
    models: str | Sequence[str],
    *,
    out: StrPath = "compare",
    select: str = "accuracy",
    ensemble: int = 0,
    config: StrPath | None = None,
    **options: Unpack[CompareArguments],
) -> Comparison:
    """Train each of `models` (a list, or names separated by commas) on one split with the same options,
    evaluate each on the same test images and rank them by `select`: `actiscope compare`. A rerun with
    the same `out` skips finished architectures and continues an interrupted one."""
    from actiscope.workflows import compare as compare_runs

    owned = [key for key in COMPARE_OWNS if key in options]
    if owned:
        raise TypeError(
            f"compare() names and places each run itself: drop {', '.join(owned)} "
            "(models= are the architectures, out= the comparison's folder)"
        )
    given = given_options(options, CompareArguments, "compare")
    if isinstance(data, TrainOptions):
        base = data.override(**given) if given else data
    else:
        base, notes = resolve_options(data, config, given, skip=COMPARE_OWNS)
        for line in notes:
            log.info(line)
    names = models.split(",") if isinstance(models, str) else list(models)
    return Comparison(compare_runs(base, names, out=Path(out), select=select, ensemble=ensemble))


# -- evaluate ----------------------------------------------------------------------------------------
def evaluate(
    model: StrPath,
    data: StrPath | None = None,
    *,
    split: str = "test",
    out: StrPath | None = None,
    tta: bool = False,
    backend: str = "auto",
    format: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    progress: Callable[[int, int], object] | None = None,
) -> Evaluation:
    """Metrics, plots and report.md for a model (a run, its directory or a package) on its run's own
    `split`, or on the labelled dataset `data`: `actiscope evaluate`. Written to `out` (default: the run's
    eval/). `progress(done, total)` is told after each file."""
    from actiscope.evaluate.report import evaluate as evaluate_package

    result = evaluate_package(
        Path(model),
        None if data is None else Path(data),
        split=split,
        out=None if out is None else Path(out),
        tta=tta,
        backend=backend,
        data_format=format,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
    )
    return Evaluation(result)


# -- predict -----------------------------------------------------------------------------------------
def predict(
    model: StrPath | Predictor,
    inputs: StrPath | Sequence[StrPath],
    *,
    top_k: int = 3,
    backend: str = "auto",
    batch_size: int = 32,
    workers: int = 2,
    timeline: bool = False,
    window: float = 2.0,
    stride: float = 1.0,
    boxes: StrPath | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> Predictions:
    """Predict image (or clip) files, folders (recursively), CSVs with a filename column or .txt lists:
    one row per file, an unreadable one with its error (`actiscope predict`). `model`: a run, its
    directory, a package, or a loaded Predictor (then `backend` is its own). `timeline`: one row per
    `window`-second window of each clip. `boxes`: a CSV of person boxes (path,xmin,ymin,xmax,ymax; paths
    relative to it) for a model trained on person crops, each image cropped as in training.
    `progress` is called with the number of files once they are known, and what it returns is told of
    each file done (a tqdm bar is such a thing)."""
    if top_k < 1:
        raise ActiscopeError(f"--top-k must be at least 1, got {top_k}")
    boxes_by_file = None if boxes is None else _read_boxes(model, Path(boxes))  # before the model loads
    predictor = model if isinstance(model, Predictor) else Predictor.load(model, backend=backend)
    kind = predictor.meta.kind
    what = show.plural(kind)
    if timeline and kind != "video":
        named = predictor.meta.architecture if isinstance(model, Predictor) else model
        raise ActiscopeError(f"--timeline needs a video model; {named} is an image model")
    given = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    files, skipped = collect_inputs([Path(p) for p in given], kind)
    if not files:
        raise ActiscopeError(f"no {what} to predict in " + ", ".join(map(str, given)))
    if skipped:
        log.info("skipped %d files that are not %s by extension (e.g. %s)", len(skipped), what, skipped[0])
    start = time.perf_counter()
    if timeline:
        rows = timeline_rows(predictor, files, window=window, stride=stride, top_k=top_k)
    else:
        bar = progress(len(files)) if progress is not None else None
        rows = predict_rows(
            predictor,
            files,
            top_k=top_k,
            batch_size=batch_size,
            workers=workers,
            progress=bar,
            boxes=None if boxes_by_file is None else boxes_for(files, boxes_by_file),
        )
    return Predictions(
        rows,
        top_k=top_k,
        kind=kind,
        backend=predictor.backend,
        files=len(files),
        seconds=time.perf_counter() - start,
        timeline=timeline,
        person_crop=predictor.meta.person_crop if predictor.crops_person else None,
        boxes=None if boxes is None else Path(boxes),
    )


def _read_boxes(model: StrPath | Predictor, boxes: Path) -> dict[Path, Box]:
    """The boxes CSV read, for a model whose model.json records a person crop."""
    from actiscope.package import read_meta

    meta = model.meta if isinstance(model, Predictor) else read_meta(Path(model))
    if meta.person_crop is None or meta.kind != "image":
        named = meta.architecture if isinstance(model, Predictor) else model
        raise ActiscopeError(
            f"--boxes: {named} was trained on whole images (its model.json records no person crop); "
            "drop --boxes"
        )
    return read_boxes(boxes)


# -- inspect and export ------------------------------------------------------------------------------
def inspect(
    data: StrPath,
    *,
    format: str | None = None,
    images: StrPath | None = None,
    near_distance: int = 4,
    workers: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> Inspection:
    """What is in a dataset and what is wrong with it (`actiscope data inspect`): classes and counts,
    image sizes, unreadable files, missing files, label typos, duplicates and the leakage among them.
    `near_distance`: the perceptual-hash distance that counts as a near duplicate (-1: exact only).
    `progress(done, total)` is told as files are read."""
    from actiscope.data.formats import load_dataset
    from actiscope.data.inspect import inspect_dataset

    dataset = load_dataset(Path(data), format, images=None if images is None else Path(images))
    report = inspect_dataset(dataset, max_distance=near_distance, workers=workers, progress=progress)
    return Inspection(report, dataset)


def export(
    model: StrPath, format: str = "onnx", *, out: StrPath | None = None, quantize: str | None = None
) -> ExportResult:
    """A model (a run, its directory or a package) as ONNX (`quantize="int8"`: also the int8 model, with
    its accuracy and speed measured) or TorchScript, checked against PyTorch: `actiscope export`. By
    default into the package, where `predict` finds it."""
    from actiscope.export import export as export_package

    return export_package(Path(model), format, out=None if out is None else Path(out), quantize=quantize)
