"""What `actiscope compare` measures and writes: one row per architecture's run, an ensemble of the best,
and the leaderboard (csv, markdown, plot). The contest itself (training each architecture on one split)
is the workflow layer's: workflows.compare.

The ensemble is scored as a run is: its package evaluated on the test split and timed on the CPU, so its
accuracy stands next to what it costs. Members that cannot make one package (different inputs) are
averaged from their test predictions instead, and their cost is the sum of theirs.
"""

from __future__ import annotations

import csv
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actiscope.evaluate.metrics import classification_metrics
from actiscope.evaluate.plots import plot_compare
from actiscope.evaluate.report import evaluate, read_predictions
from actiscope.files import atomic_output, atomic_write_text
from actiscope.package import load_package, record_metrics
from actiscope.predict import Predictor
from actiscope.run import CompareDir, RunDir

log = logging.getLogger(__name__)
SELECT = ("accuracy", "macro_f1")
SELECT_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1"}


@dataclass
class Row:
    model: str
    status: str  # "done" or "failed: <reason>"
    accuracy: float | None = None
    macro_f1: float | None = None
    params_m: float | None = None
    gflops: float | None = None
    train_s: float | None = None
    epochs: int | None = None
    infer_ms: float | None = None  # CPU, batch 1, median
    backend: str = ""
    run: str = ""


def score_run(name: str, run: RunDir) -> Row:
    """The leaderboard row of a finished run: its test metrics (evaluated now, into its eval folder), size,
    cost and CPU latency."""
    with open(run.history, newline="", encoding="utf-8") as fh:
        history = list(csv.DictReader(fh))
    return replace(
        _measure(name, run), train_s=round(sum(float(r["seconds"]) for r in history), 1), epochs=len(history)
    )


def score_ensemble(run: RunDir, members: Sequence[Row]) -> Row:
    """The leaderboard row of an ensemble package (`run`, laid out as a run): measured as a run is, its
    training time the members'. Its test accuracy and macro-F1 go into its model.json, as training puts
    a run's there."""
    row = _measure(f"ensemble({'+'.join(r.model for r in members)})", run)
    record_metrics(run.model, {"test_acc": row.accuracy, "test_f1": row.macro_f1, "infer_ms": row.infer_ms})
    return replace(row, train_s=round(sum(r.train_s or 0 for r in members), 1))


def _measure(name: str, run: RunDir) -> Row:
    """Test metrics (evaluated now, into the run's eval folder), size, GFLOPs and CPU latency."""
    result = evaluate(run.path, workers=0)
    m = result.metrics
    predictor = Predictor.load(run.path)
    model, _ = load_package(run.path)
    params = sum(p.numel() for p in model.parameters())
    pixels = predictor.preprocess(result.files[0])[None]
    return Row(
        model=name,
        status="done",
        accuracy=m["accuracy"],
        macro_f1=m["f1"]["macro"],
        params_m=round(params / 1e6, 3),
        gflops=round(_flops(model, torch.from_numpy(pixels)) / 1e9, 3),
        infer_ms=round(_latency_ms(predictor, pixels), 2),
        backend=predictor.backend,
        run=str(run.path),
    )


def _flops(model: torch.nn.Module, pixels: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(pixels)
    return float(counter.get_total_flops())


def _latency_ms(predictor: Any, pixels: np.ndarray, repeats: int = 20) -> float:
    predictor.probabilities(pixels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.probabilities(pixels)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def ensemble_row(members: list[Row]) -> Row | None:
    """Average the test probabilities of `members` (the same test images, by file): the row of an
    ensemble that has no package. Its cost is the sum of the members' (each decodes its own input)."""
    tables = [read_predictions(RunDir(Path(r.run)).eval.predictions) for r in members]
    names = tables[0][3]
    common = set(tables[0][0]).intersection(*(t[0] for t in tables[1:]))
    if any(t[3] != names for t in tables) or not common:
        log.warning("ensemble skipped: the models do not share classes or test images")
        return None
    files = sorted(common)
    probs = np.zeros((len(files), len(names)))
    truth = []
    for files_t, labels, p, _ in tables:
        at = {f: i for i, f in enumerate(files_t)}
        probs += p[[at[f] for f in files]] / len(tables)
        truth = [labels[at[f]] for f in files]
    y = np.array([names.index(t) for t in truth])
    m = classification_metrics(y, probs, names)
    return Row(
        model="ensemble(" + "+".join(r.model for r in members) + ")",
        status="done",
        accuracy=m["accuracy"],
        macro_f1=m["f1"]["macro"],
        params_m=round(sum(r.params_m or 0 for r in members), 3),
        gflops=round(sum(r.gflops or 0 for r in members), 3),
        train_s=round(sum(r.train_s or 0 for r in members), 1),
        infer_ms=round(sum(r.infer_ms or 0 for r in members), 2),
        backend="sum of members (not packaged)",
        run="",
    )


def plot_leaderboard(out: CompareDir, shown: list[Row], select: str) -> None:
    """The selected metric against CPU latency, one point per finished row."""
    points = [(r.model, r.infer_ms or 0.0, getattr(r, select) or 0.0, r.params_m or 0.0) for r in shown]
    plot_compare(points, SELECT_NAMES[select], out.plot)


COLUMNS = (
    "rank",
    "model",
    "accuracy",
    "macro_f1",
    "params_m",
    "gflops",
    "train_s",
    "epochs",
    "infer_ms",
    "backend",
    "status",
)


def _table(rows: list[Row], blend: Row | None) -> list[dict[str, Any]]:
    table = []
    for i, row in enumerate([*rows, *([blend] if blend else [])], start=1):
        values = asdict(row)
        values["rank"] = i if row.status == "done" and row is not blend else ""
        table.append({c: values.get(c) for c in COLUMNS})
    return table


def _ensemble_note(out: CompareDir, blend: Row | None) -> str:
    if blend is None:
        return ""
    if blend.run:
        package = out.ensemble.model.relative_to(out.path).as_posix()
        return f"; `{package}/` the ensemble's (one network: the mean of its members' probabilities)"
    return "; the ensemble's members take different inputs, so it is reported here but not packaged"


def write_leaderboard(out: CompareDir, rows: list[Row], select: str, blend: Row | None) -> None:
    """The leaderboard as csv and as markdown (with the plot, once it exists), rewritten atomically."""
    table = _table(rows, blend)
    with atomic_output(out.leaderboard) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)

    def cell(column: str, value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4f}" if column in SELECT else str(value)

    headers = [
        "#",
        "model",
        "accuracy",
        "macro-F1",
        "params (M)",
        "GFLOPs",
        "train s",
        "epochs",
        "CPU ms/image",
        "backend",
        "status",
    ]
    lines = [
        f"# Leaderboard (ranked by {SELECT_NAMES[select]})",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + " --- |" * len(headers),
    ]
    lines += ["| " + " | ".join(cell(c, r[c]) for c in COLUMNS) + " |" for r in table]
    lines += [
        "",
        f"Every model trained on the same {out.split.name} with the same options and was evaluated on the "
        "same test images. CPU ms/image: batch 1, median of 20, the package's default backend.",
        f"`{out.best.name}/` holds the package of rank 1{_ensemble_note(out, blend)}.",
    ]
    if out.plot.is_file():
        lines += ["", f"![accuracy against inference cost]({out.plot.name})"]
    atomic_write_text(out.leaderboard_md, "\n".join(lines) + "\n")
