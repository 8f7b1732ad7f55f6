from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision

from actiscope.models.registry import create_model
from actiscope.models.weights import WeightsError, load_weights


def _tensors_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_torchvision_file_loads_every_layer_but_a_mismatched_head(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)

    model = create_model("resnet18", num_classes=3)
    head_before = model.head.weight.clone()
    report = load_weights(model, str(path))
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert _tensors_equal(model.backbone.state_dict(), expected)
    assert report is not None and report.loaded == len(expected) and not report.head_loaded
    assert torch.equal(model.head.weight, head_before)  # the 1000-class head was dropped

    same_size = create_model("resnet18", num_classes=1000)
    assert load_weights(same_size, str(path)).head_loaded  # type: ignore[union-attr]
    assert torch.equal(same_size.head.weight, reference.fc.weight)


def test_timm_key_names_and_safetensors_and_lightning_prefixes(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model("resnet18", num_classes=10)
    path = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = create_model("timm/resnet18", num_classes=10)
    assert load_weights(model, str(path)).head_loaded  # type: ignore[union-attr]
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)

    # A Lightning checkpoint of our own module: {"state_dict": {"model.backbone...": ...}}
    ours = create_model("simple-cnn", num_classes=3)
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in ours.state_dict().items()}, "epoch": 3}, ckpt)
    fresh = create_model("simple-cnn", num_classes=3)
    assert load_weights(fresh, str(ckpt)).head_loaded  # type: ignore[union-attr]
    assert _tensors_equal(fresh.state_dict(), ours.state_dict())


def test_file_of_another_architecture_is_refused_with_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "cnn.pth"
    torch.save(create_model("simple-cnn", 3).state_dict(), path)
    with pytest.raises(
        WeightsError,
        match=r"does not fit resnet18: \d+ of \d+ backbone tensors missing \(e\.g\. conv1\.weight",
    ):
        load_weights(create_model("resnet18", 3), str(path))


def test_unreadable_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(create_model("simple-cnn", 3), str(tmp_path / "none.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable weights file"):
        load_weights(create_model("simple-cnn", 3), str(junk))


def test_imagenet_offline_says_how_to_supply_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(WeightsError) as err:
        load_weights(create_model("resnet18", 3), "imagenet")
    message = str(err.value)
    assert "cannot get ImageNet weights for resnet18" in message and "--weights PATH" in message
    assert "\n" not in message
    with pytest.raises(WeightsError, match="no published ImageNet weights"):
        load_weights(create_model("simple-cnn", 3), "imagenet")
