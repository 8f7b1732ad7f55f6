"""The command line around training: bad input is one line and a non-zero exit, before any training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from actiscope.cli import main
from tests.conftest import write_class_folders

TINY = [
    "--model",
    "simple-cnn",
    "--image-size",
    "32",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--export",
    "none",
]


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int | str | None, str]:
    try:
        code: int | str | None = main(list(argv))
    except SystemExit as exc:  # the parser itself rejected an option (a choice it knows)
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "resnet-18"], "did you mean resnet18"),
        (["--epochs", "0"], "--epochs must be positive, got 0"),
        (["--lr", "-1"], "--lr must be positive, got -1.0"),
        (["--optimizer", "lion"], "--optimizer 'lion' is not one of"),
        (["--mode", "linear"], "--mode linear transfers pretrained weights"),
        (["--weights", "nowhere.pth"], "nowhere.pth: no such weights file"),
    ],
)
def test_bad_options_one_line_no_run(
    colour_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, err = _run_cli(capsys, "train", str(colour_data), *TINY, "--out", str(tmp_path / "runs"), *extra)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_weights_of_another_architecture(
    colour_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchvision

    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    code, err = _run_cli(
        capsys, "train", str(colour_data), *TINY, "--weights", str(path), "--out", str(tmp_path / "runs")
    )
    assert code == 2 and "does not fit simple-cnn" in err and "backbone tensors missing" in err
    assert not (tmp_path / "runs").exists()


def test_dataset_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_class_folders(tmp_path / "one", {"only": 10})
    code, err = _run_cli(capsys, "train", str(tmp_path / "one"), *TINY, "--out", str(tmp_path / "runs"))
    assert code == 2 and "training needs at least two" in err
    write_class_folders(tmp_path / "small", {"a": 10, "b": 2})
    code, err = _run_cli(capsys, "train", str(tmp_path / "small"), *TINY, "--out", str(tmp_path / "runs"))
    assert code == 2 and "class 'b' has 2 usable image(s)" in err
    assert not (tmp_path / "runs").exists()


def test_unwritable_output_and_missing_resume(
    colour_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    code, err = _run_cli(capsys, "train", str(colour_data), *TINY, "--out", str(blocker))
    assert code == 2 and "choose a writable --out" in err
    code, err = _run_cli(capsys, "train", "--resume", str(tmp_path / "no-run"))
    assert code == 2 and "no run there" in err


def _cli(*args: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "actiscope.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )  # type: ignore[call-overload]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_a_resumable_run(colour_data: Path, tmp_path: Path, signum: int) -> None:
    run = tmp_path / "runs" / "c"
    proc = _cli(
        "train", str(colour_data), *TINY, "--epochs", "400", "--out", str(tmp_path / "runs"), "--name", "c"
    )
    deadline = time.monotonic() + 120
    while not (run / "history.csv").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"actiscope train --resume {run}" in err and "Traceback" not in err
    epoch_at_stop = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"]
    resumed = _cli("train", "--resume", str(run), "--epochs", str(epoch_at_stop + 2))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert (run / "model" / "model.json").is_file() and "test accuracy" in out


def test_ddp_on_cpu_with_two_processes(colour_data: Path, tmp_path: Path) -> None:
    proc = _cli(
        "train",
        str(colour_data),
        *TINY,
        "--epochs",
        "2",
        "--devices",
        "2",
        "--accelerator",
        "cpu",
        "--precision",
        "32",
        "--out",
        str(tmp_path / "runs"),
        "--name",
        "ddp",
    )
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    run = tmp_path / "runs" / "ddp"
    assert (run / "model" / "model.safetensors").is_file()
    assert "ddp" in (run / "config.yaml").read_text() or "devices: 2" in (run / "config.yaml").read_text()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp"]  # one run, not one per rank
    assert "distributed_backend=gloo" in err or "world_size" in err.lower() or "GLOBAL_RANK" in err
