"""`actiscope compare`: several architectures, one split, one budget, one leaderboard.

Each architecture trains on the same split.json with the same options and is evaluated on the same test
images. A failure is written into its row and the others go on; a rerun skips finished architectures and
continues an interrupted one from its last checkpoint.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actiscope.config import TrainConfig
from actiscope.data.formats import load_dataset
from actiscope.data.split import make_split
from actiscope.errors import ActiscopeError
from actiscope.evaluate.metrics import classification_metrics
from actiscope.evaluate.plots import plot_compare
from actiscope.evaluate.report import evaluate, read_predictions
from actiscope.files import atomic_output, atomic_write_text
from actiscope.models.registry import create_model, get_entry

log = logging.getLogger(__name__)
SELECT = ("accuracy", "macro_f1")
SELECT_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
ROW_FILE = "compare.json"  # in each finished architecture's run directory


class CompareError(ActiscopeError):
    pass


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


@dataclass
class Comparison:
    out: Path
    rows: list[Row]
    best: Row | None
    ensemble: Row | None


def compare(
    base: TrainConfig, models: list[str], *, out: Path, select: str = "accuracy", ensemble: int = 0
) -> Comparison:
    """Train each of `models` with `base`'s data and options (its model, name and out are replaced)."""
    if select not in SELECT:
        raise CompareError(f"--select {select!r} is not one of: {', '.join(SELECT)}")
    models = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if len(models) < 2:
        raise CompareError("--models needs at least two architectures, separated by commas")
    for name in models:
        get_entry(name)  # an unknown name fails here, before any training
    if ensemble and not 2 <= ensemble <= len(models):
        raise CompareError(f"--ensemble {ensemble}: give 2 to {len(models)} models to average (or 0)")
    out.mkdir(parents=True, exist_ok=True)
    split = _shared_split(base, out)

    rows = []
    for name in models:
        rows.append(_run_one(base, name, out, split))
        _write_leaderboard(out, rows, select, None)
    done = sorted((r for r in rows if r.status == "done"), key=lambda r: -(getattr(r, select) or 0))
    rows = done + [r for r in rows if r.status != "done"]
    best = done[0] if done else None
    if best is not None:
        _keep_best(Path(best.run) / "model", out / "best")
    blend = _ensemble(done[:ensemble], out, select) if ensemble and len(done) >= 2 else None
    shown = [*done, *([blend] if blend else [])]
    if shown:
        plot_compare([(r.model, r.infer_ms or 0.0, getattr(r, select) or 0.0, r.params_m or 0.0) for r in shown],
                     SELECT_NAMES[select], out / "compare.png")  # fmt: skip
    _write_leaderboard(out, rows, select, blend)
    return Comparison(out, rows, best, blend)


def _shared_split(base: TrainConfig, out: Path) -> Path:
    """One split for every architecture: the given one, or out/split.json (made once, reused on rerun)."""
    if base.split:
        return Path(base.split)
    path = out / "split.json"
    if not path.is_file():
        dataset = load_dataset(base.data, base.format)
        make_split(dataset, val=base.val, test=base.test, seed=base.seed).save(path)
    return path


def _run_one(base: TrainConfig, name: str, out: Path, split: Path) -> Row:
    from actiscope.engine.fit import TrainingInterrupted, resume_config, train

    run_dir = out / "runs" / name.replace("/", "-")
    if (run_dir / ROW_FILE).is_file():
        log.info("%s: finished in an earlier run, skipped", name)
        return Row(**json.loads((run_dir / ROW_FILE).read_text(encoding="utf-8")))
    try:
        if not (run_dir / "model" / "model.json").is_file():
            if (run_dir / "checkpoints" / "last.ckpt").is_file():
                log.info("%s: continuing from its last checkpoint", name)
                train(resume_config(run_dir), resume=run_dir)
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
                log.info("%s: training", name)
                config = replace(
                    base, model=name, split=str(split), out=str(run_dir.parent), name=run_dir.name
                )
                train(config)
        row = _score(name, run_dir)
    except TrainingInterrupted:
        raise  # Ctrl-C stops the whole comparison; a rerun continues this architecture
    except Exception as exc:  # one architecture's failure is its row, not the end of the contest
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning("%s failed: %s", name, reason)
        return Row(name, f"failed: {reason}", run=str(run_dir))
    atomic_write_text(run_dir / ROW_FILE, json.dumps(asdict(row), indent=1))
    return row


def _score(name: str, run_dir: Path) -> Row:
    from actiscope.predict import Predictor

    result = evaluate(run_dir, workers=0)
    m = result.metrics
    predictor = Predictor.load(run_dir)
    meta = predictor.meta
    model = create_model(name, len(meta.class_names), image_size=meta.image_size, frames=meta.frames).eval()
    params = sum(p.numel() for p in model.parameters())
    pixels = predictor.preprocess(result.files[0])[None]
    with open(run_dir / "history.csv", newline="", encoding="utf-8") as fh:
        history = list(csv.DictReader(fh))
    return Row(
        model=name, status="done", accuracy=m["accuracy"], macro_f1=m["f1"]["macro"],
        params_m=round(params / 1e6, 3), gflops=round(_flops(model, torch.from_numpy(pixels)) / 1e9, 3),
        train_s=round(sum(float(r["seconds"]) for r in history), 1), epochs=len(history),
        infer_ms=round(_latency_ms(predictor, pixels), 2), backend=predictor.backend, run=str(run_dir),
    )  # fmt: skip


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


def _ensemble(members: list[Row], out: Path, select: str) -> Row | None:
    """Average the test probabilities of the best K models (the same test images, by file)."""
    tables = [read_predictions(Path(r.run) / "eval" / "predictions.csv") for r in members]
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
        model="ensemble(" + "+".join(r.model for r in members) + ")", status="done", accuracy=m["accuracy"],
        macro_f1=m["f1"]["macro"], params_m=round(sum(r.params_m or 0 for r in members), 3),
        gflops=round(sum(r.gflops or 0 for r in members), 3), train_s=round(sum(r.train_s or 0 for r in members), 1),
        infer_ms=round(sum(r.infer_ms or 0 for r in members), 2), backend="average of members", run="",
    )  # fmt: skip


def _keep_best(package: Path, target: Path) -> None:
    """Copy the best package to out/best, replacing an older best only once the copy is complete."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(package, staging)
    old = target.with_name(target.name + ".old")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


COLUMNS = ("rank", "model", "accuracy", "macro_f1", "params_m", "gflops", "train_s", "epochs", "infer_ms",
           "backend", "status")  # fmt: skip


def _table(rows: list[Row], blend: Row | None) -> list[dict[str, Any]]:
    table = []
    for i, row in enumerate([*rows, *([blend] if blend else [])], start=1):
        values = asdict(row)
        values["rank"] = i if row.status == "done" and row is not blend else ""
        table.append({c: values.get(c) for c in COLUMNS})
    return table


def _write_leaderboard(out: Path, rows: list[Row], select: str, blend: Row | None) -> None:
    table = _table(rows, blend)
    with atomic_output(out / "leaderboard.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)

    def cell(column: str, value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4f}" if column in SELECT else str(value)

    headers = ["#", "model", "accuracy", "macro-F1", "params (M)", "GFLOPs", "train s", "epochs",
               "CPU ms/image", "backend", "status"]  # fmt: skip
    lines = [f"# Leaderboard (ranked by {SELECT_NAMES[select]})", "",
             "| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]  # fmt: skip
    lines += ["| " + " | ".join(cell(c, r[c]) for c in COLUMNS) + " |" for r in table]
    lines += ["", "Every model trained on the same split.json with the same options and was evaluated on the "
              "same test images. CPU ms/image: batch 1, median of 20, the package's default backend.",
              "`best/` holds the package of rank 1 (ensembles are reported, not packaged)."]  # fmt: skip
    if (out / "compare.png").is_file():
        lines += ["", "![accuracy against inference cost](compare.png)"]
    atomic_write_text(out / "leaderboard.md", "\n".join(lines) + "\n")
