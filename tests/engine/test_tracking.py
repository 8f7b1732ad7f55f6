"""Output a person can follow in a log file, and experiment tracking (--logger) through Lightning's loggers."""

from __future__ import annotations

import csv
import json
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from actiscope.cli import main
from actiscope.engine.callbacks import epoch_line
from actiscope.run import RunDir
from tests.conftest import Records

TINY = ["--model", "simple-cnn", "--image-size", "32", "--batch-size", "16", "--workers", "0"]
EPOCH_LINE = re.compile(
    r"^simple-cnn epoch (\d)/2: train loss \d\.\d{4} acc \d\.\d{4} \| val loss \d\.\d{4} acc (\d\.\d{4}) "
    r"F1 \d\.\d{4} \| lr \d\.\d\de-\d\d \| \d+\.\d s, \d+ images/s \| best val acc (\d\.\d{4}) \(epoch \d\)$"
)


@pytest.fixture
def lightning_messages() -> Iterator[list[str]]:
    """What Lightning logs (its tips and notes; its own handler writes to the stream it found at import)."""
    handler, logger = Records(), logging.getLogger("lightning.pytorch")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_every_logger_leaves_its_files_and_a_log_file_gets_a_line_per_epoch(
    colour_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    lightning_messages: list[str],
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = [
        "train",
        str(colour_data),
        *TINY,
        "--epochs",
        "2",
        "--export",
        "none",
        "--out",
        str(tmp_path),
        "--name",
        "r",
        "--logger",
        "csv,tensorboard",
        "--logger",
        "mlflow",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(argv) == 0
    run = RunDir(tmp_path / "r")
    err = capsys.readouterr().err

    # stderr is no terminal here: no bar, one plain line per epoch, and nothing from other libraries
    lines = [m for line in err.splitlines() if (m := EPOCH_LINE.match(line))]
    assert [m.group(1) for m in lines] == ["1", "2"]
    history = list(csv.DictReader(run.history.open(encoding="utf-8")))
    assert [f"{float(r['val_acc']):.4f}" for r in history] == [m.group(2) for m in lines]
    assert lines[1].group(3) == f"{max(float(r['val_acc']) for r in history):.4f}"
    assert "litlogger" not in err and "GPU available" not in err and "━" not in err
    assert not any("litlogger" in m or "GPU available" in m for m in lightning_messages)
    assert not [w for w in caught if not w.filename.startswith(str(Path(__file__).parents[2] / "src"))]

    # csv: Lightning's metrics.csv, a validation row per epoch
    with (run.logs / "csv" / "version_0" / "metrics.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    val_rows = [r for r in rows if r["val_acc"]]
    assert [int(r["epoch"]) for r in val_rows] == [0, 1]
    assert [float(r["val_acc"]) for r in val_rows] == pytest.approx([float(r["val_acc"]) for r in history])

    # tensorboard: the curves' scalars and the test split's confusion matrix
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    events = EventAccumulator(str(run.logs / "tensorboard" / "version_0"), size_guidance={IMAGES: 0})
    events.Reload()
    assert [e.value for e in events.Scalars("val_acc")] == pytest.approx(
        [float(r["val_acc"]) for r in history]
    )
    assert {"train_loss_epoch", "lr", "train_images_per_s", "test_acc"} <= set(events.Tags()["scalars"])
    (matrix,) = events.Images("test/confusion_matrix")
    assert matrix.width > 100 and matrix.height > 100

    # mlflow: the run's own store holds the run with its options, per-epoch and evaluation metrics, package
    from mlflow import MlflowClient

    client = MlflowClient(run.mlflow_store)
    (found,) = client.search_runs([client.get_experiment_by_name("actiscope").experiment_id])
    assert found.info.run_name == "r" and found.info.status == "FINISHED"
    assert found.data.params["lr"] == "0.001" and found.data.params["model"] == "simple-cnn"
    assert len(client.get_metric_history(found.info.run_id, "val_acc")) == 2
    evaluation = json.loads(run.eval.metrics.read_text(encoding="utf-8"))
    assert found.data.metrics["eval/accuracy"] == pytest.approx(evaluation["accuracy"])
    assert found.data.metrics["eval/f1_macro"] == pytest.approx(evaluation["f1"]["macro"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "model")}
    assert {"model/model.json", "model/model.safetensors"} <= artifacts


def test_a_run_without_a_test_split_says_so(
    colour_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "train",
        str(colour_data),
        *TINY,
        "--epochs",
        "1",
        "--test",
        "0",
        "--export",
        "int8",
        "--out",
        str(tmp_path),
        "--name",
        "r",
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    run = RunDir(tmp_path / "r")
    meta = json.loads((run.model / "model.json").read_text(encoding="utf-8"))
    assert "test_acc" not in meta["metrics"] and "nan" not in out
    val = next(csv.DictReader(run.history.open(encoding="utf-8")))["val_acc"]
    assert (
        f"no test split, so no test accuracy: best validation accuracy {float(val):.4f} at epoch 1 of 1"
        in out
    )
    split = json.loads(run.split.read_text(encoding="utf-8"))
    val_images = sum(e["split"] == "val" for e in split["entries"])
    assert re.search(rf"int8 agrees with fp32 on \d+\.\d% of the {val_images} validation images", err), err
    assert "Total length of" not in err


def test_the_epoch_line_under_a_time_limit() -> None:
    rows = [
        {
            "epoch": 1,
            "train_loss": 2.0,
            "train_acc": 0.5,
            "val_loss": 1.5,
            "val_acc": 0.6,
            "val_f1": 0.55,
            "lr": 0.001,
            "seconds": 12.34,
            "train_images_per_s": 99.6,
        },
        {
            "epoch": 2,
            "train_loss": 1.0,
            "train_acc": 0.7,
            "val_loss": 1.6,
            "val_acc": 0.5,
            "val_f1": None,
            "lr": None,
            "seconds": 10.0,
            "train_images_per_s": 120.0,
        },
    ]
    assert epoch_line("resnet18", rows, 1000, 4.25) == (
        "resnet18 epoch 2/1000 (4.2 min left): train loss 1.0000 acc 0.7000 | val loss 1.6000 acc 0.5000 "
        "F1 - | lr - | 10.0 s, 120 images/s | best val acc 0.6000 (epoch 1)"
    )
