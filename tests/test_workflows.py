"""The workflows: train then export, and compare (its failures: a row for an architecture's own, a
traceback for a bug)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import Fail
from torch.onnx.errors import OnnxExporterError

from actiscope import workflows
from actiscope.cli import main
from actiscope.engine import fit
from actiscope.engine.fit import RunResult
from actiscope.errors import DataError
from actiscope.export import ExportError, ExportResult
from actiscope.options import TrainOptions
from actiscope.predict import Predictor
from actiscope.run import CompareDir
from actiscope.workflows import compare

OPTIONS = {
    "image_size": 32,
    "epochs": 2,
    "batch_size": 8,
    "lr": 3e-3,
    "workers": 0,
    "augment": "light",
    "export": "none",
    "cache": False,
}
MODELS = ["simple-cnn", "mobilenet_v3_large"]


def _leaderboard(out: Path) -> list[dict[str, str]]:
    with CompareDir(out).leaderboard.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_compare_reports_a_failure_then_resumes_and_ensembles(
    colour_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "contest"
    real_train = workflows.train
    trained: list[str] = []

    def failing_train(options: TrainOptions, **kw: Any) -> RunResult:
        trained.append(options.model.architecture)
        if options.model.architecture == "mobilenet_v3_large":
            raise RuntimeError("simulated crash in epoch 1")
        return real_train(options, **kw)

    monkeypatch.setattr(workflows, "train", failing_train)
    first = compare(TrainOptions.from_flat(data=str(colour_data), **OPTIONS), MODELS, out=out, ensemble=2)
    rows = _leaderboard(out)
    assert [r["model"] for r in rows] == ["simple-cnn", "mobilenet_v3_large"]
    assert rows[0]["status"] == "done" and float(rows[0]["accuracy"]) >= 0.9
    assert rows[1]["status"] == "failed: simulated crash in epoch 1"
    assert first.best is not None and first.best.model == "simple-cnn" and first.ensemble is None
    assert Predictor.load(CompareDir(out).best).predict([next(colour_data.rglob("*.png"))])[0].label

    def counting_train(options: TrainOptions, **kw: Any) -> RunResult:
        trained.append(options.model.architecture)
        return real_train(options, **kw)

    monkeypatch.setattr(workflows, "train", counting_train)
    trained.clear()
    second = compare(
        TrainOptions.from_flat(data=str(colour_data), **OPTIONS),
        MODELS,
        out=out,
        ensemble=2,
        select="macro_f1",
    )
    assert trained == ["mobilenet_v3_large"]  # the finished architecture is not trained again
    rows = _leaderboard(out)
    assert len(rows) == 3 and rows[2]["model"] == "ensemble(" + "+".join(r["model"] for r in rows[:2]) + ")"
    for row in rows:
        assert row["status"] == "done" and 0 <= float(row["accuracy"]) <= 1
        assert float(row["params_m"]) > 0 and float(row["gflops"]) > 0 and float(row["infer_ms"]) > 0
    assert {r["model"] for r in rows[:2]} == set(MODELS) and rows[0]["rank"] == "1"
    assert float(rows[0]["macro_f1"]) >= float(rows[1]["macro_f1"])
    assert (
        second.best is not None
        and Predictor.load(CompareDir(out).best).meta.architecture == second.best.model
    )
    assert CompareDir(out).plot.stat().st_size > 5000
    md = CompareDir(out).leaderboard_md.read_text()
    assert "ranked by macro-F1" in md and "](compare.png)" in md and "mobilenet_v3_large" in md


def test_compare_cli_checks_names_before_training(
    colour_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    assert main(["compare", str(colour_data), "--models", "simple-cnn,resnet81", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown model 'resnet81'" in err and "resnet18" in err
    assert not CompareDir(out).runs.exists()
    assert main(["compare", str(colour_data), "--models", "simple-cnn", "--out", str(out)]) == 2
    assert "at least two architectures" in capsys.readouterr().err
    code = main(["compare", str(colour_data), "--models", "simple-cnn,resnet18", "--ensemble", "5"])
    assert code == 2 and "--ensemble 5" in capsys.readouterr().err


@pytest.mark.parametrize(
    "error",
    [
        DataError("data/x.png: unreadable"),
        torch.OutOfMemoryError("out of memory"),
        Fail("cannot load the graph"),
    ],
)
def test_an_architectures_own_failure_is_its_row(
    colour_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def failing_train(config: object, **kw: object) -> object:
        raise error

    monkeypatch.setattr(workflows, "train", failing_train)
    result = compare(TrainOptions.from_flat(data=str(colour_data), **OPTIONS), MODELS, out=tmp_path / "c")
    assert [r.status for r in result.rows] == [f"failed: {error}"] * 2 and result.best is None
    assert [r["status"] for r in _leaderboard(tmp_path / "c")] == [f"failed: {error}"] * 2


@pytest.mark.parametrize("where", ["train", "score_run"])
def test_a_bug_stops_the_comparison(
    colour_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    def bug(*args: object, **kw: object) -> object:
        raise TypeError("score() missing 1 required positional argument: 'run'")

    monkeypatch.setattr(workflows, "train", lambda config, **kw: None)
    monkeypatch.setattr(workflows, where, bug)
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        compare(TrainOptions.from_flat(data=str(colour_data), **OPTIONS), MODELS, out=tmp_path / "c")


def _trained_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, package: Path | None) -> list[str]:
    """fit.train replaced by a finished run (`package` None: a DDP rank that wrote none); returns the
    formats export is asked for."""
    monkeypatch.setattr(fit, "train", lambda config, **kw: RunResult(tmp_path, {"test_acc": 1.0}, 1, package))
    asked: list[str] = []

    def export(path: Path, fmt: str, **kw: object) -> ExportResult:
        asked.append(fmt)
        return ExportResult(path / "model.onnx")

    monkeypatch.setattr(workflows, "export", export)
    return asked


def test_train_then_export_and_only_where_the_package_was_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = TrainOptions.from_flat(data=str(tmp_path), export="onnx")
    asked = _trained_elsewhere(monkeypatch, tmp_path, tmp_path / "model")
    assert workflows.train(config).package == tmp_path / "model" and asked == ["onnx"]
    asked = _trained_elsewhere(monkeypatch, tmp_path, None)
    workflows.train(config)
    assert asked == []


@pytest.mark.parametrize(
    "error", [ExportError("no test images"), OnnxExporterError("unsupported operator"), Fail("bad graph")]
)
def test_an_export_that_fails_for_its_own_reason_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    _trained_elsewhere(monkeypatch, tmp_path, tmp_path / "model")

    def failing_export(path: Path, fmt: str, **kw: object) -> None:
        raise error

    monkeypatch.setattr(workflows, "export", failing_export)
    logger = logging.getLogger("actiscope")  # the CLI stops it propagating to the root logger
    logger.addHandler(caplog.handler)
    try:
        result = workflows.train(TrainOptions.from_flat(data=str(tmp_path)))
    finally:
        logger.removeHandler(caplog.handler)
    assert result.metrics == {"test_acc": 1.0}
    assert any(f"ONNX export failed ({error})" in r.getMessage() for r in caplog.records)


def test_a_bug_in_the_export_is_not_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _trained_elsewhere(monkeypatch, tmp_path, tmp_path / "model")

    def buggy_export(path: Path, fmt: str, **kw: object) -> None:
        raise AttributeError("'PackageMeta' object has no attribute 'frame'")

    monkeypatch.setattr(workflows, "export", buggy_export)
    with pytest.raises(AttributeError, match="no attribute 'frame'"):
        workflows.train(TrainOptions.from_flat(data=str(tmp_path)))
