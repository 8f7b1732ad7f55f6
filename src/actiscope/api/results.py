"""The results of the Python API's verbs, as a notebook shows them (an HTML table, the plots inline) and
as a console does (one line). Each wraps the library's own result (engine.fit.RunResult,
evaluate.report.Evaluation, workflows.Comparison, data.inspect.InspectReport) or rows (predict.batch),
and asks RunDir, EvalDir and CompareDir where the files are."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actiscope.api import show
from actiscope.api.arguments import StrPath
from actiscope.errors import ActiscopeError
from actiscope.package import read_meta
from actiscope.predict.batch import Row
from actiscope.run import CompareDir, EvalDir, RunDir

if TYPE_CHECKING:
    from actiscope.data.formats import Dataset
    from actiscope.data.inspect import InspectReport
    from actiscope.engine.fit import RunResult
    from actiscope.evaluate import report
    from actiscope.evaluate.leaderboard import Row as LeaderboardRow
    from actiscope.workflows import Comparison as CompareResult


@dataclass(frozen=True)
class Run:
    """A training run (engine.fit.RunResult): its directory, test metrics, per-epoch history and curves,
    and its model package. A path-like of its directory: `Predictor.load(run)`, `evaluate(run)`."""

    result: RunResult

    @classmethod
    def load(cls, path: StrPath) -> Run:
        """A run already on disk, with the metrics its package records."""
        from actiscope.engine.fit import RunResult

        run = RunDir(Path(path))
        if not run.exists():
            raise ActiscopeError(f"{path}: no run here (no {run.config.name}); give a run directory")
        metrics = read_meta(run.model).metrics if run.has_model() else {}
        epochs = metrics.get("epochs_trained") or len(show.read_rows(run.history))
        return cls(RunResult(run.path, metrics, int(epochs), run.model if run.has_model() else None))

    @property
    def path(self) -> Path:
        return self.result.run_dir

    @property
    def metrics(self) -> dict[str, Any]:
        return self.result.metrics

    @property
    def epochs(self) -> int:
        return self.result.epochs

    @property
    def package(self) -> Path | None:
        """The deployable package (None where this process did not write it: a DDP rank > 0)."""
        return self.result.package

    @property
    def history(self) -> list[dict[str, Any]]:
        """history.csv: one row per epoch (losses, accuracy, macro-F1, learning rate, seconds, ...)."""
        return show.read_rows(RunDir(self.path).history)

    @property
    def curves(self) -> Path | None:
        """curves.png: loss and accuracy per epoch, the best epoch marked."""
        curves = RunDir(self.path).curves
        return curves if curves.is_file() else None

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __repr__(self) -> str:
        m = self.metrics
        score = show.headline(m.get("test_acc"), m.get("test_f1"))
        return f"<Run {self.path}: {score}, best epoch {m.get('best_epoch')} of {self.epochs}>"

    def _repr_html_(self) -> str:
        package = f"model package <code>{show.escape(self.package)}</code>" if self.package else "no package"
        return show.section(
            f"Run <code>{show.escape(self.path)}</code>: {package}",
            show.key_values(self.metrics.items()),
            show.png(self.curves, "loss and accuracy per epoch"),
        )


@dataclass(frozen=True)
class Comparison:
    """What `compare` returns (workflows.Comparison): the leaderboard's rows, best first, and the plot."""

    result: CompareResult

    @property
    def out(self) -> Path:
        return self.result.out

    @property
    def rows(self) -> list[LeaderboardRow]:
        """One leaderboard row per architecture (evaluate.leaderboard.Row), the finished ones best first."""
        return self.result.rows

    @property
    def best(self) -> LeaderboardRow | None:
        return self.result.best

    @property
    def ensemble(self) -> LeaderboardRow | None:
        return self.result.ensemble

    def __repr__(self) -> str:
        failed = sum(r.status != "done" for r in self.rows)
        best = f"best {self.best.model}" if self.best is not None else "no architecture finished"
        return f"<Comparison {self.out}: {best} of {len(self.rows)}, {failed} failed>"

    def _repr_html_(self) -> str:
        rows = [asdict(r) for r in [*self.rows, *([self.ensemble] if self.ensemble else [])]]
        return show.section(
            f"Comparison <code>{show.escape(self.out)}</code>",
            show.table(rows),
            show.png(CompareDir(self.out).plot, "score against inference cost"),
        )


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` returns (evaluate.report.Evaluation): the metrics, the per-class report, the
    confusion matrix and the other plots, and where report.md is."""

    result: report.Evaluation

    @property
    def out(self) -> Path:
        return self.result.out

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json: accuracy, F1, top-k, calibration, ..., `per_class` and `confusion_matrix`."""
        return self.result.metrics

    @property
    def per_class(self) -> list[dict[str, Any]]:
        """One row per class: precision, recall, F1, support, predicted, ROC AUC, average precision."""
        return list(self.metrics["per_class"])

    @property
    def confusion_matrix(self) -> list[list[int]]:
        """Rows: the true class, columns: the predicted one (in the model's class order)."""
        return list(self.metrics["confusion_matrix"])

    @property
    def plots(self) -> list[Path]:
        return self.result.plots

    @property
    def report(self) -> Path:
        """report.md, with every number and plot."""
        return EvalDir(self.out).report

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"<Evaluation {self.out}: accuracy {show.number(m['accuracy'])}, macro-F1 "
            f"{show.number(m['f1']['macro'])} on {m['images']} images of {m['data']}>"
        )

    def _repr_html_(self) -> str:
        m = self.metrics
        summary = {
            "accuracy": m["accuracy"],
            "balanced accuracy": m["balanced_accuracy"],
            "macro-F1": m["f1"]["macro"],
            "weighted-F1": m["f1"]["weighted"],
            **{f"top-{k} accuracy": v for k, v in m["top_k_accuracy"].items()},
            "Cohen's kappa": m["cohen_kappa"],
            "log loss": m["log_loss"],
            "expected calibration error": m["expected_calibration_error"],
        }
        columns = ("class", "precision", "recall", "f1", "support")
        return show.section(
            f"Evaluation: {m['images']} images of {show.escape(m['data'])} ({m['backend']} backend); "
            f"report <code>{show.escape(self.report)}</code>",
            show.key_values(summary.items()),
            show.table(
                [{c: show.number(row[c]) for c in columns} for row in self.per_class]
            ),  # None: undefined
            show.png(EvalDir(self.out).plot("confusion_matrix.png"), "confusion matrix"),
        )


class Predictions(list[Row]):
    """predict's rows, in the order of the inputs: filename, [start, end,] label, confidence, the next
    classes of the top-k, error. A table in a notebook; `to_csv` writes `actiscope predict --out`'s CSV."""

    def __init__(
        self,
        rows: Sequence[Row] = (),
        *,
        top_k: int = 3,
        kind: str = "image",
        backend: str = "",
        files: int | None = None,
        seconds: float = 0.0,
        timeline: bool = False,
        person_crop: float | None = None,
        boxes: Path | None = None,
    ) -> None:
        super().__init__(rows)
        self.top_k, self.kind, self.backend, self.timeline = top_k, kind, backend, timeline
        self.files = len(rows) if files is None else files  # how many files: a timeline has rows per window
        self.seconds = seconds  # predicting them, decoding included
        self.person_crop = person_crop  # the margin of the person crop the model was trained on, if any
        self.boxes = boxes  # the boxes CSV the crops came from

    @property
    def crop_note(self) -> str | None:
        """For a model trained on person crops, which images were given as such (None for another model)."""
        from actiscope.predict.batch import CROPPED, WHOLE

        if self.person_crop is None:
            return None
        cropped = sum(r.get("input") == CROPPED for r in self)
        whole = sum(r.get("input") == WHOLE for r in self)
        margin = f"margin {self.person_crop:g}"
        if self.boxes is None:
            return (
                f"this model was trained on person crops ({margin}) and no --boxes were given: "
                f"the whole image was used for all {whole} images"
            )
        line = f"person crops ({margin}): {cropped} cropped to their box in {self.boxes}"
        return line + (f"; {whole} without a box there: the whole image was used" if whole else "")

    @property
    def failed(self) -> list[Row]:
        """The rows of the files that could not be predicted (each with its error)."""
        return [row for row in self if row.get("error")]

    def to_records(self) -> list[dict[str, object]]:
        """The rows as plain dicts (a copy), e.g. for `pandas.DataFrame.from_records`."""
        return [dict(row) for row in self]

    def to_csv(self, path: StrPath, *, submission: bool = False) -> Path:
        """The CSV `actiscope predict --out` writes (`submission`: filename and label only), atomically."""
        from actiscope.predict import write_predictions_csv

        write_predictions_csv(
            self, Path(path), top_k=self.top_k, submission=submission, timeline=self.timeline
        )
        return Path(path)

    def __repr__(self) -> str:
        return (
            f"<Predictions: {self.files - len(self.failed)} {show.plural(self.kind)} predicted, "
            f"{len(self.failed)} failed ({self.backend} backend)>"
        )

    def _repr_html_(self) -> str:
        return show.section(show.escape(repr(self)[1:-1]), show.table(self, limit=show.ROWS_SHOWN))


@dataclass(frozen=True)
class Inspection:
    """What `inspect` returns: the report (data.inspect.InspectReport) and the dataset it describes."""

    report: InspectReport
    dataset: Dataset

    @property
    def has_problems(self) -> bool:
        """Unusable files or leakage (`data inspect` exits 1)."""
        return self.report.has_problems

    def save(self, out: StrPath) -> list[Path]:
        """inspect.json and samples.png (a few images of each class) into `out`; the files written."""
        from actiscope.data.inspect import write_report

        return write_report(self.report, self.dataset, Path(out))

    def __repr__(self) -> str:
        r = self.report
        verdict = "problems: unusable files or leakage" if r.has_problems else "clean"
        return f"<Inspection {r.root}: {r.format} layout, {r.num_files} {r.kind}s, {len(r.classes)} classes; {verdict}>"

    def _repr_html_(self) -> str:
        r = self.report
        problems = {
            "unreadable files": len(r.unreadable),
            "CSV rows naming missing files": len(r.missing),
            "labels that look like typos": len(r.label_typos),
            "duplicate groups": len(r.duplicates),
            "of them leaking (across splits, or with different labels)": len(r.leakage),
            "imbalance ratio (largest/smallest class)": r.imbalance_ratio,
        }
        return show.section(
            show.escape(repr(self)[1:-1]),
            show.key_values(problems.items()),
            show.table([{"class": name, r.kind + "s": count} for name, count in r.classes.items()]),
        )
