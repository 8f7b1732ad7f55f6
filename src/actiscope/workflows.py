"""What chains the layers: train then export for inference, and compare (train, evaluate, rank).

The layers below each do one thing (engine trains a run, export writes ONNX, evaluate measures a
package); the commands a user runs are these sequences of them. Nothing below imports this module.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from actiscope.engine import fit
from actiscope.engine.fit import RunResult, TrainingInterrupted, resume_config
from actiscope.engine.tracking import log_outcome
from actiscope.errors import ActiscopeError
from actiscope.evaluate.leaderboard import (
    SELECT,
    Row,
    ensemble_row,
    plot_leaderboard,
    score_ensemble,
    score_run,
    write_leaderboard,
)
from actiscope.evaluate.report import evaluate
from actiscope.export import export
from actiscope.files import atomic_write_text
from actiscope.models.registry import get_entry
from actiscope.options import TrainOptions
from actiscope.package import EnsembleInputError, save_ensemble
from actiscope.run import CompareDir, EvalDir, RunDir

log = logging.getLogger(__name__)


@cache
def _expected_failures() -> tuple[type[BaseException], ...]:
    """What a training, an export or a scoring can legitimately raise besides ActiscopeError (bad data,
    missing weights, a non-finite loss, a damaged package): OSError (a disk full, a file gone), MemoryError,
    RuntimeError (torch: out of memory, an input too small for an architecture, an operator the ONNX exporter
    does not support: torch.onnx.errors.OnnxExporterError is one), and ONNX Runtime's errors for a graph it
    cannot load or run (they are not RuntimeErrors). Anything else is a bug, and propagates.
    Imported when first needed: onnxruntime costs time to import that a run without ONNX does not spend."""
    from onnxruntime.capi.onnxruntime_pybind11_state import (
        Fail,
        InvalidGraph,
        InvalidProtobuf,
        NotImplemented,
        RuntimeException,
    )

    ort = (Fail, InvalidGraph, InvalidProtobuf, NotImplemented, RuntimeException)
    return (ActiscopeError, OSError, MemoryError, RuntimeError, *ort)


# the evaluation metrics (evaluate.metrics) the experiment trackers get
EVAL_SCALARS = (
    "accuracy",
    "balanced_accuracy",
    "top_k_accuracy",
    "precision",
    "recall",
    "f1",
    "cohen_kappa",
    "log_loss",
    "expected_calibration_error",
    "roc_auc",
    "average_precision",
)


# -- train ------------------------------------------------------------------------------------------
def train(
    options: TrainOptions, *, resume: str | Path | None = None, announce: Sequence[str] = ()
) -> RunResult:
    """`actiscope train`: train `options` (or continue the run at `resume`, engine.fit.train), then add the
    files `predict` runs on ONNX Runtime with (options.output.export) to the package."""
    result = fit.train(options, resume=resume, announce=announce)
    if result.package is not None:  # only the process that wrote the package (rank 0 of a DDP run)
        _export_for_inference(result.package, options.output.export)
        if result.loggers:
            _track(result, result.package, workers=options.data.workers)
    return result


def _track(result: RunResult, package: Path, *, workers: int) -> None:
    """--logger: the trackers get the whole package and, where the run has a test split, its evaluation
    (written to the run's eval/ as `actiscope evaluate RUN` writes it): the metrics, the confusion matrix."""
    folders, images, scalars = {"model": package}, {}, {}
    if "test_acc" in result.metrics:
        evaluation = evaluate(package, workers=workers)
        folders["eval"] = evaluation.out
        images["test/confusion_matrix"] = EvalDir(evaluation.out).plot("confusion_matrix.png")
        scalars = _scalars(evaluation.metrics)
    log_outcome(result.loggers, scalars, images=images, folders=folders)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The evaluation's single numbers (`f1: {macro: ..}` as `eval/f1_macro`; not per class), those that
    are undefined (None) left out."""
    out: dict[str, float] = {}
    for key in EVAL_SCALARS:
        value = metrics.get(key)
        items = value.items() if isinstance(value, dict) else [("", value)]
        out |= {f"eval/{key}{'_' if k else ''}{k}": v for k, v in items if isinstance(v, int | float)}
    return out


def _export_for_inference(package: Path, what: str) -> None:
    """ONNX (and int8) beside the weights so `predict` runs on ONNX Runtime by default. The package is
    already complete without them: an export that fails for a reason of its own is a warning, not a lost
    run."""
    if what == "none":
        return
    try:
        result = export(package, "onnx", quantize="int8" if what == "int8" else None)
    except _expected_failures() as exc:  # the PyTorch package is still whole and usable
        log.warning("ONNX export failed (%s); `predict` will use PyTorch", str(exc).splitlines()[0][:200])
        return
    if result.int8:
        log.info(result.int8_line())


# -- compare ----------------------------------------------------------------------------------------
class CompareError(ActiscopeError):
    pass


@dataclass
class Comparison:
    out: Path
    rows: list[Row]
    best: Row | None
    ensemble: Row | None


def compare(
    base: TrainOptions, models: list[str], *, out: Path, select: str = "accuracy", ensemble: int = 0
) -> Comparison:
    """`actiscope compare`: train each of `models` with `base`'s data and options (its model, name and out
    are replaced) on one split, evaluate each on the same test images, and rank them.

    An architecture that fails for a reason of its own (see _expected_failures) is written into its row and
    the others go on; a rerun skips finished architectures and continues an interrupted one from its last
    checkpoint."""
    if select not in SELECT:
        raise CompareError(f"--select {select!r} is not one of: {', '.join(SELECT)}")
    models = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if len(models) < 2:
        raise CompareError("--models needs at least two architectures, separated by commas")
    for name in models:
        get_entry(name)  # an unknown name fails here, before any training
    if ensemble and not 2 <= ensemble <= len(models):
        raise CompareError(f"--ensemble {ensemble}: give 2 to {len(models)} models to average (or 0)")
    comparison = CompareDir(out)
    out.mkdir(parents=True, exist_ok=True)
    split = _shared_split(base, comparison)

    rows = []
    for name in models:
        rows.append(_run_one(base, name, comparison, split))
        write_leaderboard(comparison, rows, select, None)
    done = sorted((r for r in rows if r.status == "done"), key=lambda r: -(getattr(r, select) or 0))
    rows = done + [r for r in rows if r.status != "done"]
    best = done[0] if done else None
    if best is not None:
        _keep_best(RunDir(Path(best.run)).model, comparison.best)
    blend = (
        _ensemble(done[:ensemble], comparison, split, base.output.export)
        if ensemble and len(done) >= 2
        else None
    )
    shown = [*done, *([blend] if blend else [])]
    if shown:
        plot_leaderboard(comparison, shown, select)
    write_leaderboard(comparison, rows, select, blend)
    return Comparison(out, rows, best, blend)


def _shared_split(base: TrainOptions, comparison: CompareDir) -> Path:
    """One split for every architecture: the given one, or the comparison's own (made once, reused on rerun)."""
    if base.data.split:
        return Path(base.data.split)
    if not comparison.split.is_file():
        fit.split_manifest(base).save(comparison.split)
    return comparison.split


def _run_one(base: TrainOptions, name: str, comparison: CompareDir, split: Path) -> Row:
    run = comparison.run(name)
    row_file = run.path / comparison.row
    if row_file.is_file():
        log.info("%s: finished in an earlier run, skipped", name)
        return Row(**json.loads(row_file.read_text(encoding="utf-8")))
    try:
        if not run.has_model():
            if run.has_checkpoint():
                log.info("%s: continuing from its last checkpoint", name)
                train(resume_config(run.path), resume=run.path)
            else:
                shutil.rmtree(run.path, ignore_errors=True)
                log.info("%s: training", name)
                train(base.override(model=name, split=str(split), out=str(run.path.parent), name=run.name))
        row = score_run(name, run)
    except TrainingInterrupted:
        raise  # Ctrl-C stops the whole comparison; a rerun continues this architecture
    except _expected_failures() as exc:  # one architecture's failure is its row, not the end of the contest
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning("%s failed: %s", name, reason)
        return Row(name, f"failed: {reason}", run=str(run.path))
    atomic_write_text(row_file, json.dumps(asdict(row), indent=1))
    return row


def _keep_best(package: Path, target: Path) -> None:
    """Copy the best package to the comparison's best/, replacing an older best only once the copy is
    complete."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(package, staging)
    old = target.with_name(target.name + ".old")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _ensemble(members: list[Row], comparison: CompareDir, split: Path, export_what: str) -> Row | None:
    """The best `members` as one package in comparison.ensemble (beside a copy of the split, so that
    evaluate and export find its test images), exported like a trained package, and scored like a run.
    Members that take different inputs cannot share one: their row is averaged from their predictions."""
    target = comparison.ensemble
    shutil.rmtree(target.path, ignore_errors=True)
    try:
        save_ensemble([RunDir(Path(r.run)).model for r in members], target.model)
    except EnsembleInputError as exc:
        log.warning("ensemble reported, not packaged: %s", exc)
        return ensemble_row(members)
    shutil.copyfile(split, target.split)
    _export_for_inference(target.model, export_what)
    try:
        return score_ensemble(target, members)
    except _expected_failures() as exc:  # the members' rows stand; the package is there to inspect
        log.warning("ensemble not scored: %s", str(exc).strip().splitlines()[0][:300])
        return None
