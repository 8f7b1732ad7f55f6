from __future__ import annotations

import csv
from pathlib import Path

import pytest

import actiscope.engine.fit as fit
from actiscope.cli import main
from actiscope.config import TrainConfig
from actiscope.evaluate.compare import compare
from actiscope.predict import Predictor

OPTIONS = {"image_size": 32, "epochs": 2, "batch_size": 8, "lr": 3e-3, "workers": 0, "augment": "light",
           "export": "none", "cache": False}  # fmt: skip
MODELS = ["simple-cnn", "mobilenet_v3_large"]


def _leaderboard(out: Path) -> list[dict[str, str]]:
    with (out / "leaderboard.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_compare_reports_a_failure_then_resumes_and_ensembles(
    colour_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "contest"
    real_train = fit.train
    trained: list[str] = []

    def failing_train(config: object, **kw: object) -> object:
        trained.append(config.model)  # type: ignore[attr-defined]
        if config.model == "mobilenet_v3_large":  # type: ignore[attr-defined]
            raise RuntimeError("simulated crash in epoch 1")
        return real_train(config, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fit, "train", failing_train)
    first = compare(TrainConfig(data=str(colour_data), **OPTIONS), MODELS, out=out, ensemble=2)
    rows = _leaderboard(out)
    assert [r["model"] for r in rows] == ["simple-cnn", "mobilenet_v3_large"]
    assert rows[0]["status"] == "done" and float(rows[0]["accuracy"]) >= 0.9
    assert rows[1]["status"] == "failed: simulated crash in epoch 1"
    assert first.best is not None and first.best.model == "simple-cnn" and first.ensemble is None
    assert Predictor.load(out / "best").predict([next(colour_data.rglob("*.png"))])[0].label

    def counting_train(config: object, **kw: object) -> object:
        trained.append(config.model)  # type: ignore[attr-defined]
        return real_train(config, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fit, "train", counting_train)
    trained.clear()
    second = compare(
        TrainConfig(data=str(colour_data), **OPTIONS), MODELS, out=out, ensemble=2, select="macro_f1"
    )
    assert trained == ["mobilenet_v3_large"]  # the finished architecture is not trained again
    rows = _leaderboard(out)
    assert len(rows) == 3 and rows[2]["model"] == "ensemble(" + "+".join(r["model"] for r in rows[:2]) + ")"
    for row in rows:
        assert row["status"] == "done" and 0 <= float(row["accuracy"]) <= 1
        assert float(row["params_m"]) > 0 and float(row["gflops"]) > 0 and float(row["infer_ms"]) > 0
    assert {r["model"] for r in rows[:2]} == set(MODELS) and rows[0]["rank"] == "1"
    assert float(rows[0]["macro_f1"]) >= float(rows[1]["macro_f1"])
    assert second.best is not None and Predictor.load(out / "best").meta.architecture == second.best.model
    assert (out / "compare.png").stat().st_size > 5000
    md = (out / "leaderboard.md").read_text()
    assert "ranked by macro-F1" in md and "](compare.png)" in md and "mobilenet_v3_large" in md


def test_compare_cli_checks_names_before_training(
    colour_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    assert main(["compare", str(colour_data), "--models", "simple-cnn,resnet81", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown model 'resnet81'" in err and "resnet18" in err
    assert not (out / "runs").exists()
    assert main(["compare", str(colour_data), "--models", "simple-cnn", "--out", str(out)]) == 2
    assert "at least two architectures" in capsys.readouterr().err
    code = main(["compare", str(colour_data), "--models", "simple-cnn,resnet18", "--ensemble", "5"])
    assert code == 2 and "--ensemble 5" in capsys.readouterr().err
