"""`actiscope evaluate`: a model package on labelled images -> metrics.json, plots and report.md.

By default the images are the run's own test split (its split.json), so a figure is never measured on
images the model trained on. Prediction goes through the one Predictor (the same preprocessing as serving).
A model trained on person crops is given each image's person box from the data (Stanford 40's XML
annotations), and metrics.json and report.md say how many images had none and were used whole.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actiscope.data.formats import Sample, load_dataset
from actiscope.data.split import SPLITS, SplitManifest
from actiscope.errors import ActiscopeError
from actiscope.evaluate import plots
from actiscope.evaluate.metrics import calibration, classification_metrics
from actiscope.files import atomic_output, atomic_write_text
from actiscope.package import describe_weights, member_dirs, package_dir, package_split, read_meta
from actiscope.predict import Predictor
from actiscope.run import EvalDir

log = logging.getLogger(__name__)
MISTAKES_SHOWN = 12


class EvaluationError(ActiscopeError):
    pass


@dataclass
class Evaluation:
    out: Path
    metrics: dict[str, Any]
    plots: list[Path] = field(default_factory=list)
    y_true: np.ndarray | None = None
    probs: np.ndarray | None = None
    files: list[Path] = field(default_factory=list)


def evaluate(
    model: str | Path,
    data: str | Path | None = None,
    *,
    split: str = "test",
    out: Path | None = None,
    tta: bool = False,
    backend: str = "auto",
    data_format: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    progress: Callable[[int, int], object] | None = None,
) -> Evaluation:
    """Evaluate the package `model` on `split` of its run (or of `data`) into `out`; `progress(done, total)`
    is told after each file."""
    directory = package_dir(model)
    meta = read_meta(directory)
    samples, source = evaluation_samples(directory, data, split, data_format)
    unknown = sorted({str(s.label) for s in samples} - set(meta.class_names))  # samples are labelled
    if unknown:
        raise EvaluationError(
            f"{source}: label(s) the model does not know: {', '.join(unknown)} "
            f"(it knows: {', '.join(meta.class_names)}); evaluate on data with the model's classes"
        )
    target = EvalDir(out) if out is not None else EvalDir.for_package(directory)
    predictor = Predictor.load(directory, backend=backend)
    index = {name: i for i, name in enumerate(meta.class_names)}
    paths = [s.path for s in samples]
    boxes = [s.box for s in samples]
    rows: dict[int, np.ndarray] = {}
    unreadable: list[dict[str, str]] = []
    for i, probs, error in predictor.file_probabilities(
        paths, batch_size=batch_size, workers=workers, tta=tta, boxes=boxes
    ):
        if probs is None:
            unreadable.append({"path": str(paths[i]), "error": str(error)})
        else:
            rows[i] = probs
        if progress is not None:
            progress(len(rows) + len(unreadable), len(paths))
    if not rows:
        raise EvaluationError(
            f"{source}: none of the {len(paths)} images could be read (first: {unreadable[0]['path']})"
        )
    kept = sorted(rows)
    y_true = np.array([index[str(samples[i].label)] for i in kept])  # evaluation samples are labelled
    probs = np.stack([rows[i] for i in kept])
    files = [paths[i] for i in kept]

    metrics = classification_metrics(y_true, probs, meta.class_names)
    cropped = sum(predictor.preprocess.crops(boxes[i]) for i in kept)
    if predictor.crops_person and cropped < len(kept):
        log.warning(
            "%s: %d of %d images have no person box and were given whole; the model was trained on "
            "person crops",
            source,
            len(kept) - cropped,
            len(kept),
        )
    described = {
        "architecture": meta.architecture,
        "package": str(directory),
        "image_size": meta.image_size,
        "kind": meta.kind,
        "frames": meta.frames,
        "weights": meta.weights,
        "person_crop": meta.person_crop,
        "members": [read_meta(d).architecture for d in member_dirs(directory, meta)],
    }
    metrics = {
        "model": described,
        "data": source,
        "split": split,
        "backend": predictor.backend,
        "tta": tta,
        "unreadable": len(unreadable),
        "unreadable_files": unreadable,
        "person_boxes": {"cropped": cropped, "whole": len(kept) - cropped if predictor.crops_person else 0},
        **metrics,
    }
    target.path.mkdir(parents=True, exist_ok=True)
    _write_predictions(target.predictions, files, y_true, probs, meta.class_names)
    written = _write_plots(target, y_true, probs, meta.class_names, files, metrics)
    atomic_write_text(target.report, render_report(metrics, [p.name for p in written]))
    atomic_write_text(target.metrics, json.dumps(metrics, indent=1))
    return Evaluation(target.path, metrics, written, y_true, probs, files)


def evaluation_samples(
    directory: Path, data: str | Path | None, split: str, data_format: str | None = None
) -> tuple[list[Sample], str]:
    """The labelled images to evaluate and a description of where they came from."""
    if split not in SPLITS:
        raise EvaluationError(f"--split {split!r} is not one of: {', '.join(SPLITS)}")
    run_split = package_split(directory)
    manifest = SplitManifest.load(run_split) if run_split is not None else None
    if data is None:
        if manifest is None:
            raise EvaluationError(
                f"{directory}: this package has no run split beside it; give DATA to evaluate on"
            )
        return _nonempty(manifest.samples(split), f"the run's {split} split ({manifest.root})")
    dataset = load_dataset(data, data_format)
    if manifest is not None and Path(manifest.root).resolve() == dataset.root.resolve():
        # The data the run was trained on: only its held-out split is a fair test.
        return _nonempty(manifest.samples(split), f"the run's {split} split of {dataset.root}")
    labelled = [s for s in dataset.samples if s.label is not None]
    if not labelled:
        raise EvaluationError(
            f"{data}: no labels to evaluate against; use `actiscope predict` for unlabelled images"
        )
    if dataset.predefined_split:
        present = sorted({s.split for s in labelled if s.split})
        if split not in present:
            raise EvaluationError(
                f"{data}: has no {split!r} split (it has: {', '.join(present)}); choose --split"
            )
        return _nonempty([s for s in labelled if s.split == split], f"{dataset.root} ({split} split)")
    return _nonempty(labelled, f"{dataset.root} (all {len(labelled)} labelled images)")


def _nonempty(samples: list[Sample], source: str) -> tuple[list[Sample], str]:
    if not samples:
        raise EvaluationError(f"{source}: no images to evaluate")
    return samples, source


def _write_predictions(
    path: Path, files: Sequence[Path], y_true: np.ndarray, probs: np.ndarray, names: Sequence[str]
) -> None:
    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "label", "predicted", "confidence", *(f"p_{n}" for n in names)])
        for file, truth, row in zip(files, y_true, probs, strict=True):
            top = int(row.argmax())
            writer.writerow([file, names[truth], names[top], f"{row[top]:.6f}", *(f"{p:.6f}" for p in row)])


def read_predictions(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """predictions.csv back as (files, true label names, probabilities, class names)."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    names = [h.removeprefix("p_") for h in header[4:]]
    probs = np.array([[float(v) for v in r[4:]] for r in rows], dtype=np.float64).reshape(
        len(rows), len(names)
    )
    return [r[0] for r in rows], np.array([r[1] for r in rows]), probs, names


def _write_plots(
    out: EvalDir,
    y_true: np.ndarray,
    probs: np.ndarray,
    names: Sequence[str],
    files: Sequence[Path],
    metrics: dict[str, Any],
) -> list[Path]:
    y_pred = probs.argmax(1)
    confidence = probs.max(1)
    wrong = np.flatnonzero(y_pred != y_true)
    worst = wrong[np.argsort(-confidence[wrong])][:MISTAKES_SHOWN]
    reliability = calibration(y_true, probs)
    f1 = [c["f1"] for c in metrics["per_class"]]
    jobs: dict[str, Callable[[Path], None]] = {
        "confusion_matrix.png": lambda p: plots.plot_confusion(
            np.array(metrics["confusion_matrix"]), names, p
        ),
        "roc.png": lambda p: plots.plot_roc(y_true, probs, names, p),
        "pr.png": lambda p: plots.plot_pr(y_true, probs, names, p),
        "reliability.png": lambda p: plots.plot_reliability(reliability["bins"], reliability["ece"], p),
        "per_class.png": lambda p: plots.plot_per_class(names, f1, p),
        "mistakes.png": lambda p: plots.plot_mistakes(
            [(files[i], names[y_true[i]], names[y_pred[i]], float(confidence[i])) for i in worst], p
        ),
    }
    written = []
    for name in EvalDir.PLOTS:
        jobs[name](out.plot(name))
        written.append(out.plot(name))
    return written


def _fmt(value: Any) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _model_lines(m: dict[str, Any]) -> list[str]:
    """The report's lines on the model: its starting weights (an ensemble: its members) and its input."""
    model = m["model"]
    if model.get("members"):
        lines = [f"- an ensemble: the mean of the probabilities of {', '.join(model['members'])}"]
    else:
        lines = [f"- starting weights: {describe_weights(model.get('weights', {}))}"]
    crop, boxes = model.get("person_crop"), m.get("person_boxes", {})
    if crop is None:
        return [*lines, "- input: whole images (the model was trained on whole images)"]
    line = (
        f"- input: person crops (margin {crop:g}), from the data's boxes for {boxes.get('cropped', 0)} images"
    )
    if boxes.get("whole"):
        line += f"; {boxes['whole']} had no person box and were given whole (the model expects a crop)"
    return [*lines, line]


def render_report(metrics: dict[str, Any], plot_names: Sequence[str]) -> str:
    """report.md: the summary, the per-class table and every plot that exists, in one file."""
    m = metrics
    lines = [
        f"# Evaluation: {m['model']['architecture']}",
        "",
        f"- data: {m['data']}",
        f"- images evaluated: {m['images']}; unreadable: {m['unreadable']}",
        f"- backend: {m['backend']}; test-time augmentation: {'horizontal flip' if m['tta'] else 'none'}",
        f"- model package: `{m['model']['package']}`",
        *_model_lines(m),
        "",
        "## Summary",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| accuracy | {_fmt(m['accuracy'])} |",
        f"| balanced accuracy | {_fmt(m['balanced_accuracy'])} |",
        *(f"| top-{k} accuracy | {_fmt(v)} |" for k, v in m["top_k_accuracy"].items()),
        *(
            f"| {avg} {name} | {_fmt(m[name][avg])} |"
            for avg in ("macro", "micro", "weighted")
            for name in ("precision", "recall", "f1")
        ),
        f"| Cohen's kappa | {_fmt(m['cohen_kappa'])} |",
        f"| log loss | {_fmt(m['log_loss'])} |",
        f"| expected calibration error | {_fmt(m['expected_calibration_error'])} |",
        f"| ROC AUC (micro / macro) | {_fmt(m['roc_auc']['micro'])} / {_fmt(m['roc_auc']['macro'])} |",
        f"| average precision (micro / macro) | {_fmt(m['average_precision']['micro'])} / "
        f"{_fmt(m['average_precision']['macro'])} |",
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support | predicted | ROC AUC | AP |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {c['class']} | {_fmt(c['precision'])} | {_fmt(c['recall'])} | {_fmt(c['f1'])} | {c['support']} "
            f"| {c['predicted']} | {_fmt(c['roc_auc'])} | {_fmt(c['average_precision'])} |"
            for c in m["per_class"]
        ),
        "",
    ]
    if m["undefined"]:
        lines += ["## Undefined values", "", *(f"- {note}" for note in m["undefined"]), ""]
    titles = {
        "confusion_matrix.png": "Confusion matrix",
        "roc.png": "ROC curves",
        "pr.png": "Precision-recall",
        "reliability.png": "Calibration",
        "per_class.png": "F1 per class",
        "mistakes.png": "Most confident mistakes",
    }
    lines += ["## Plots", ""]
    for name in plot_names:
        lines += [f"### {titles.get(name, name)}", "", f"![{titles.get(name, name)}]({name})", ""]
    if m["unreadable_files"]:
        lines += ["## Unreadable images (not evaluated)", ""]
        lines += [f"- `{u['path']}`: {u['error']}" for u in m["unreadable_files"]] + [""]
    return "\n".join(lines)
