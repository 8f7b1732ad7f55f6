"""The video architectures: one registry, one interface, clips in (N, T, 3, H, W), logits out; weights
from a local file (Kinetics for the 3D CNNs, ImageNet for a per-frame network); offline is one line."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from actiscope.cli import main
from actiscope.models.entry import UnknownModelError
from actiscope.models.registry import create_model, example_input, get_entry, list_models
from actiscope.models.weights import WeightsError, load_weights

VIDEO_MODELS = ["convlstm", "cnn-lstm", "cnn-gru", "frame-avg", "r3d_18", "r2plus1d_18", "mc3_18"]


def test_every_video_model_is_registered_and_runs_on_a_clip() -> None:
    assert [e.name for e in list_models("video")] == VIDEO_MODELS
    for name in VIDEO_MODELS:
        model = create_model(name, 4, image_size=32, frames=6).eval()
        assert (model.kind, model.data_config.frames, model.data_config.image_size) == ("video", 6, 32)
        with torch.no_grad():
            logits = model(example_input(model.data_config, 2))
        assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def test_models_command_lists_only_video_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--kind", "video"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in VIDEO_MODELS)
    assert "resnet18 " not in out and "timm/" not in out


def test_frame_avg_is_the_mean_of_per_frame_logits() -> None:
    model = create_model("frame-avg", 3, image_size=32, frames=5).eval()
    clip = example_input(model.data_config, 2)
    with torch.no_grad():
        per_frame = model.head(model.backbone.frame(clip.flatten(0, 1))).view(2, 5, 3)
        assert torch.allclose(model(clip), per_frame.mean(1), atol=1e-5)


def test_frame_order_matters_to_temporal_models_only() -> None:
    torch.manual_seed(0)
    clip = torch.randn(1, 6, 3, 32, 32)
    reversed_clip = clip.flip(1)
    for name in ("convlstm", "cnn-lstm", "r3d_18", "frame-avg"):
        model = create_model(name, 3, image_size=32, frames=6).eval()
        with torch.no_grad():
            same = torch.allclose(model(clip), model(reversed_clip), atol=1e-5)
        assert same == (name == "frame-avg"), name


def test_per_frame_network_is_any_image_model() -> None:
    entry = get_entry("cnn-lstm:resnet18")
    assert (entry.kind, entry.data_config.image_size, entry.pretrained_name) == ("video", 224, "imagenet")
    model = create_model("cnn-gru:mobilenet_v3_large", 2, image_size=32, frames=3).eval()
    assert model(example_input(model.data_config)).shape == (1, 2)
    with pytest.raises(UnknownModelError, match="did you mean resnet18"):
        get_entry("cnn-lstm:resnet19")
    with pytest.raises(UnknownModelError, match="must be an image model"):
        get_entry("frame-avg:r3d_18")
    with pytest.raises(UnknownModelError, match=r"unknown model 'r3d_18:resnet18': did you mean .*r3d_18"):
        get_entry("r3d_18:resnet18")  # a 3D CNN has no per-frame network to choose


def test_kinetics_weights_from_a_local_file(tmp_path: Path) -> None:
    import torchvision

    source = torchvision.models.video.r3d_18(num_classes=400)
    torch.save(source.state_dict(), tmp_path / "r3d_18_kinetics.pth")
    model = create_model("r3d_18", 5, image_size=32, frames=4)
    report = load_weights(model, tmp_path / "r3d_18_kinetics.pth")
    assert report is not None and not report.head_loaded  # 400 Kinetics classes vs our 5
    assert torch.equal(model.backbone.stem[0].weight, source.stem[0].weight)
    with pytest.raises(WeightsError, match="does not fit mc3_18"):
        load_weights(create_model("mc3_18", 5), tmp_path / "r3d_18_kinetics.pth")


def test_imagenet_file_fills_the_per_frame_network(tmp_path: Path) -> None:
    import torchvision

    source = torchvision.models.resnet18()
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    model = create_model("cnn-lstm:resnet18", 3, image_size=32, frames=2)
    lstm_before = model.backbone.rnn.weight_ih_l0.clone()
    report = load_weights(model, tmp_path / "resnet18.pth")
    assert report is not None and report.loaded == len(source.state_dict()) - 2  # all but fc
    assert torch.equal(model.backbone.frame.conv1.weight, source.conv1.weight)
    assert torch.equal(model.backbone.rnn.weight_ih_l0, lstm_before)  # the LSTM keeps its initialisation


def test_hub_weights_offline_or_of_another_kind_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kw: object) -> None:
        raise URLError("no network")

    monkeypatch.setattr("torchvision.models._api.WeightsEnum.get_state_dict", offline)
    with pytest.raises(WeightsError, match="no Kinetics-400 weights for r3d_18 here and no network") as info:
        load_weights(create_model("r3d_18", 3), "kinetics")
    assert "actiscope weights import FILE --model r3d_18" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(WeightsError, match=r"no published ImageNet weights \(it has Kinetics-400 weights\)"):
        load_weights(create_model("r3d_18", 3), "imagenet")
    with pytest.raises(WeightsError, match="convlstm has no published Kinetics-400 weights"):
        load_weights(create_model("convlstm", 3), "kinetics")
