from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from actiscope.cli import main
from actiscope.data.video import VideoLimits, VideoReadError
from actiscope.models.registry import create_model
from actiscope.package import read_meta, save_package
from actiscope.predict import Backend, OnnxBackend, Prediction, Predictor


class FixedLogits:
    """A backend that is no model at all: the Predictor needs only the Protocol."""

    def __init__(self, logits: list[float]) -> None:
        self.logits = np.array([logits], np.float32)
        self.batches: list[np.ndarray] = []

    def __call__(self, batch: np.ndarray, /) -> np.ndarray:
        self.batches.append(batch)
        return self.logits.repeat(len(batch), axis=0)


def test_any_backend_behind_the_protocol_is_ranked_into_predictions(package: Path, folder: Path) -> None:
    runtime = FixedLogits([0.0, 2.0, 1.0])  # classes blue, green, red
    backend: Backend = runtime
    predictor = Predictor(read_meta(package), backend, backend="fixed")
    [first, second] = predictor.predict(sorted(folder.glob("red/red_*.png"))[:2], top_k=2)
    assert first == second and [label for label, _ in first.top_k] == ["green", "red"]
    assert first.confidence == pytest.approx(np.exp(2) / (1 + np.exp(1) + np.exp(2)))
    assert runtime.batches[0].shape == (2, 3, 32, 32) and runtime.batches[0].dtype == np.float32
    # top_k is clamped to the classes there are, and never below one
    assert len(predictor.predict([folder / "red" / "red_0.png"], top_k=9)[0].top_k) == 3
    assert predictor.predict([folder / "red" / "red_0.png"], top_k=0)[0] == Prediction(
        "green", first.confidence, [("green", first.confidence)]
    )


def test_threads_are_a_parameter_not_the_environment(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from actiscope.export import export

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("ACTISCOPE_INFERENCE_THREADS", "1")  # no longer read by the library
        Predictor.load(package, "torch")
        assert torch.get_num_threads() == 2
        Predictor.load(package, "torch", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    export(package, "onnx")
    for threads, expected in ((1, 1), (None, 0)):  # 0: ONNX Runtime's default
        runtime = Predictor.load(package, "onnx", threads=threads).runtime
        assert isinstance(runtime, OnnxBackend)
        assert runtime.session.get_session_options().intra_op_num_threads == expected
    with pytest.raises(ValueError, match="threads must be at least 1"):
        Predictor.load(package, "torch", threads=0)


def test_video_limits_bound_prediction_and_the_timeline(tmp_path: Path, three_second_clip: Path) -> None:
    torch.manual_seed(0)
    model = create_model("frame-avg", 2, image_size=16, frames=4).eval()
    save_package(model, tmp_path / "pkg", class_names=["left", "right"])
    clip = three_second_clip
    assert Predictor.load(tmp_path / "pkg").predict([clip])[0].label in ("left", "right")
    strict = Predictor.load(tmp_path / "pkg", video_limits=VideoLimits(max_seconds=2))
    with pytest.raises(VideoReadError, match="over the limit of 2 s"):
        strict.predict([clip])
    with pytest.raises(VideoReadError, match="over the limit of 2 s"):
        strict.timeline(clip)
    assert len(Predictor.load(tmp_path / "pkg").timeline(clip, window=1.0, stride=1.0)) == 3


def test_bad_model_and_inputs_are_one_line_errors(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", str(tmp_path / "nope"), str(tmp_path)]) == 2
    assert "no such model package" in capsys.readouterr().err
    assert main(["predict", str(package), str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg: no such file or folder" in capsys.readouterr().err
    assert main(["predict", str(package), str(tmp_path), "--backend", "onnx"]) == 2
    assert "actiscope export" in capsys.readouterr().err
