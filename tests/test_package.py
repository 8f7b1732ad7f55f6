from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from actiscope.models.registry import create_model
from actiscope.package import PackageError, describe_weights, load_package, read_meta, save_package

CLASSES = ["a", "b", "c"]


def _saved(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    model = create_model("simple-cnn", 3, image_size=32).eval()
    save_package(model, tmp_path / "model", class_names=CLASSES, metrics={"test_acc": 0.5})
    return model, tmp_path / "model"


def test_roundtrip_gives_the_same_predictions(tmp_path: Path) -> None:
    model, directory = _saved(tmp_path)
    loaded, meta = load_package(tmp_path)  # a run directory works too (its model/)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    assert meta.class_names == CLASSES and meta.image_size == 32 and meta.metrics == {"test_acc": 0.5}
    assert meta.architecture == "simple-cnn" and meta.kind == "image"
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "model.safetensors"]


def test_missing_or_tampered_metadata_is_a_clear_error(tmp_path: Path) -> None:
    _, directory = _saved(tmp_path)
    meta_path = directory / "model.json"
    meta = json.loads(meta_path.read_text())

    meta_path.write_text(json.dumps({**meta, "class_names": ["a", "b"]}))
    with pytest.raises(PackageError, match=r"does not match model\.json \(simple-cnn, 2 classes\)"):
        load_package(directory)
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "class_names"}))
    with pytest.raises(PackageError, match="missing field"):
        load_package(directory)
    meta_path.write_text("{broken")
    with pytest.raises(PackageError, match="unreadable"):
        load_package(directory)
    meta_path.write_text(json.dumps({**meta, "architecture": "resnet-18"}))
    with pytest.raises(Exception, match="did you mean resnet18"):
        load_package(directory)
    meta_path.unlink()
    with pytest.raises(PackageError, match=r"no model\.json"):
        load_package(directory)


def test_truncated_weights_are_a_clear_error(tmp_path: Path) -> None:
    _, directory = _saved(tmp_path)
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(PackageError, match="cannot read the weights"):
        load_package(directory)


def test_starting_weights_are_recorded_and_old_packages_still_load(tmp_path: Path) -> None:
    model = create_model("simple-cnn", 3, image_size=32)
    weights = {"name": "imagenet", "source": "actiscope store", "sha256": "9e5df75c319d" + "0" * 52}
    save_package(model, tmp_path / "model", class_names=CLASSES, weights=weights)
    assert read_meta(tmp_path).weights == weights
    assert describe_weights(weights) == "imagenet (actiscope store, sha256 9e5df75c319d…)"
    assert describe_weights({"name": "none", "source": "none"}) == "none (trained from scratch)"
    assert describe_weights({"name": "file", "source": "file /w.pth", "sha256": "ab" * 32}).startswith(
        "file /w.pth (sha256 abababababab…)"
    )

    meta_path = tmp_path / "model" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "weights"}))  # before provenance
    assert read_meta(tmp_path).weights == {} and describe_weights({}) == "not recorded"
    meta_path.write_text(json.dumps({**meta, "weights": "imagenet"}))
    with pytest.raises(PackageError, match="weights must be an object of strings"):
        read_meta(tmp_path)
