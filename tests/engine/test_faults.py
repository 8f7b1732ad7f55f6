"""Training under faults done for real: kill -9 in the middle of writing a checkpoint, a full disk, and a
run folder from someone else whose checkpoint would run code."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import lightning  # noqa: F401  (here, before a test captures stderr: its log handler keeps the stream it finds)
import pytest
import torch

from actiscope.cli import main
from actiscope.data.split import SplitManifest
from actiscope.options import TrainOptions
from tests.conftest import write_colour_classes
from tests.faults import (
    FullDisk,
    actiscope,
    cli_argv,
    code_marker,
    kill_while_writing,
    on_full_disk,
    plant_code,
)

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
    "--precision",
    "32",
]
CHECKPOINTS = ("best.ckpt", "last.ckpt")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_colour_classes(tmp_path / "data", per_class=10)


@pytest.fixture
def other_tmpdir(tmp_path: Path) -> Iterator[dict[str, str]]:
    """$TMPDIR on another file system than the runs where there is one (/dev/shm), as on a machine whose
    /tmp is a tmpfs: there, a checkpoint saved through $TMPDIR and moved is a copy into its final name."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        yield {}
        return
    folder = tempfile.mkdtemp(dir=shm)
    yield {"TMPDIR": folder}
    shutil.rmtree(folder, ignore_errors=True)


def _whole(checkpoint: Path) -> dict:
    """The checkpoint, loaded weights-only; a half-written one fails here."""
    loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert loaded["state_dict"] and loaded["optimizer_states"] and loaded["loops"], checkpoint
    return loaded


def test_kill_9_while_a_checkpoint_is_written_resumes_from_the_last_whole_one(
    data: Path, tmp_path: Path, other_tmpdir: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "runs" / "k"
    last = run / "checkpoints" / "last.ckpt"
    log = tmp_path / "train.log"
    proc = actiscope(
        "train",
        str(data),
        *TINY,
        "--epochs",
        "400",
        "--out",
        str(run.parent),
        "--name",
        "k",
        env=other_tmpdir,
        log=log,
    )
    # Caught writing last.ckpt (under that name or another), after a first one is there.
    caught = kill_while_writing(proc, run / "checkpoints", pattern="*last*", timeout=240, ready=last.is_file)
    assert caught is not None and proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    # Under each checkpoint's name there is a whole checkpoint, never the half that was being written.
    for name in CHECKPOINTS:
        assert (run / "checkpoints" / name).is_file()
        _whole(run / "checkpoints" / name)
    epoch = _whole(last)["epoch"]

    assert main(["train", "--resume", str(run), "--epochs", str(epoch + 2)]) == 0, f"killed writing {caught}"
    assert "test accuracy" in capsys.readouterr().out and (run / "model" / "model.json").is_file()
    with (run / "history.csv").open() as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == list(range(1, epoch + 3))
    assert _whole(last)["epoch"] == epoch + 1
    # The killed save's temporary file is gone too (the next save of last.ckpt removed it).
    assert sorted(os.listdir(run / "checkpoints")) == sorted(CHECKPOINTS)


def test_a_full_disk_during_training_is_one_line_and_leaves_no_half_file(data: Path, tmp_path: Path) -> None:
    # A tmpfs that holds the run's small files and one 14 MB checkpoint, not two; or a 8 MB file size limit.
    disk = FullDisk(size="20m", file_limit=8_000_000)
    out = tmp_path / "out"
    argv = cli_argv("train", str(data), *TINY, "--epochs", "3", "--out", str(out), "--name", "r")
    done, after = on_full_disk(argv, out, disk)
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert done.returncode == 74 and "Traceback" not in done.stderr, done.stderr[-3000:]
    problem = (
        "no space left" if disk.how == "tmpfs" else r"file too large for the file size limit \(`ulimit -f`\)"
    )
    (line,) = errors
    assert re.fullmatch(
        rf"actiscope: error: {problem} in {out}/r/checkpoints \(writing (best|last)\.ckpt\): "
        r".* choose another --out",
        line,
    ), line
    # What is there is whole: the run's files parse, a checkpoint there loads, no temporary file is left.
    run = after / "r"
    assert (
        TrainOptions.from_yaml(run / "config.yaml").model.architecture == "simple-cnn"
        and SplitManifest.load(run / "split.json").classes
    )
    for checkpoint in (run / "checkpoints").iterdir():
        assert checkpoint.name in CHECKPOINTS
        _whole(checkpoint)
    assert not [p for p in run.rglob(".*") if p.is_file()]
    assert not (run / "model").exists()


@pytest.mark.parametrize("payload", ["torch.save", "pickle", "truncated"])
def test_resume_never_runs_code_from_the_run_folder(
    trained_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    payload: str,
) -> None:
    marker = code_marker(tmp_path, monkeypatch)  # and torch's weights-only default switched off
    run = shutil.copytree(trained_run, tmp_path / "handed-over")
    last = run / "checkpoints" / "last.ckpt"
    if payload == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    else:
        plant_code(last, marker, payload)
    code = main(["train", "--resume", str(run), "--epochs", "9"])
    err = capsys.readouterr().err
    assert not marker.exists()
    assert code == 2 and err.count("actiscope: error:") == 1 and "Traceback" not in err
    expected = {
        "torch.save": "not a training checkpoint: it pickles posix.system, not only tensors",
        "pickle": "not a training checkpoint: not a checkpoint file",
        "truncated": "a damaged checkpoint",
    }[payload]
    assert f"{last}: {expected}" in err
