from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from actiscope.cli import main
from actiscope.data.images import is_image_path
from actiscope.predict import Predictor, decoded_batches


def _image_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_image_path(p))  # corrupt.jpg and fake.jpg included


def test_decoding_processes_give_what_decoding_here_gives(package: Path, folder: Path) -> None:
    preprocess = Predictor.load(package).preprocess
    paths = _image_paths(folder)
    # Batches of one: far more batches than shared slots, so a slot written again too early would show.
    here = list(decoded_batches(paths, preprocess, batch_size=1, workers=0))
    there = list(decoded_batches(paths, preprocess, batch_size=1, workers=2))
    assert [i for i, _, _ in there] == [[i] for i in range(len(paths))] == [i for i, _, _ in here]
    assert [e for _, _, e in there] == [e for _, _, e in here]
    errors = {i: e for _, _, batch_errors in there for i, e in batch_errors.items()}
    assert sorted(paths[i].name for i in errors) == ["corrupt.jpg", "fake.jpg"]
    expected = np.stack([preprocess.pixels_uint8(p) for i, p in enumerate(paths) if i not in errors])
    assert np.array_equal(np.concatenate([x for _, x, _ in there]), expected)
    assert np.array_equal(np.concatenate([x for _, x, _ in here]), expected)
    assert multiprocessing.active_children() == []


def test_decoding_runs_at_most_two_batches_per_process_ahead(
    package: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[object] = []  # the first index of each batch sent to a decoding process
    real = ProcessPoolExecutor.submit

    def counted(self: ProcessPoolExecutor, fn: Callable[..., object], /, *args: object) -> Future[object]:
        submitted.append(args[2])
        return real(self, fn, *args)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", counted)
    preprocess = Predictor.load(package).preprocess
    batches = decoded_batches(_image_paths(folder), preprocess, batch_size=1, workers=2)
    next(batches)
    assert submitted == [0, 1, 2, 3, 4]  # the batch taken and four ahead, not all twelve
    batches.close()
    assert multiprocessing.active_children() == []


def _die(*args: object) -> None:
    os._exit(1)  # a decoding process killed (the kernel's out-of-memory killer, say)


def test_a_decoding_process_that_dies_is_a_one_line_error(
    package: Path,
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from actiscope.predict import pool

    monkeypatch.setattr(pool, "_decode_in_slot", _die)
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(package), str(folder), "--out", str(out), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "a decoding process died" in err and "--workers 0" in err and "Traceback" not in err
    assert not out.exists()
