from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import load_file, save_file

from actiscope.cli import main
from actiscope.models.registry import create_model
from actiscope.models.store import sha256_file
from actiscope.models.weights import WeightsError, import_weights, load_weights, weights_provenance
from tests.conftest import SHARED_DATA


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
    report = load_weights(same_size, str(path))
    assert report is not None and report.head_loaded
    assert torch.equal(same_size.head.weight, reference.fc.weight)


def test_timm_key_names_and_safetensors_and_lightning_prefixes(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model("resnet18", num_classes=10)
    path = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = create_model("timm/resnet18", num_classes=10)
    report = load_weights(model, str(path))
    assert report is not None and report.head_loaded
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)

    # A Lightning checkpoint of our own module: {"state_dict": {"model.backbone...": ...}}
    ours = create_model("simple-cnn", num_classes=3)
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in ours.state_dict().items()}, "epoch": 3}, ckpt)
    fresh = create_model("simple-cnn", num_classes=3)
    report = load_weights(fresh, str(ckpt))
    assert report is not None and report.head_loaded
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


def test_imagenet_offline_says_how_to_import_a_file() -> None:
    # tests/models/conftest.py: an empty hub cache and store, and torch.hub's download fails (URLError)
    with pytest.raises(WeightsError) as err:
        load_weights(create_model("resnet18", 3), "imagenet")
    message = str(err.value)
    assert message.startswith("no ImageNet weights for resnet18 here and no network (URLError)")
    assert "`actiscope weights import FILE --model resnet18`" in message and "--weights none" in message
    assert "\n" not in message
    with pytest.raises(WeightsError, match=r"cnn-lstm:resnet18 here .* --model resnet18`"):
        load_weights(create_model("cnn-lstm:resnet18", 3, image_size=32, frames=2), "imagenet")
    with pytest.raises(WeightsError, match="no published ImageNet weights"):
        load_weights(create_model("simple-cnn", 3), "imagenet")


@pytest.fixture
def shared_weights() -> Path:
    """The real ImageNet files in ../shared/data/weights (the tests skip where they are absent)."""
    folder = SHARED_DATA / "weights"
    if not folder.is_dir():
        pytest.skip(f"real weights not present at {folder}")
    return folder


def _stored_sha256(store: Path, name: str) -> str:
    record = json.loads((store / f"{name}-imagenet.json").read_text())
    assert record["sha256"] == sha256_file(store / f"{name}-imagenet.safetensors")
    return record["sha256"]


def test_imported_imagenet_file_is_found_offline(
    shared_weights: Path, offline_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = shared_weights / "mobilenet_v2-imagenet.safetensors"
    store = offline_weights / "weights-store"
    assert main(["weights", "import", str(source), "--model", "mobilenet_v2"]) == 0
    printed = capsys.readouterr().out
    sha = _stored_sha256(store, "mobilenet_v2")
    assert str(store / "mobilenet_v2-imagenet.safetensors") in printed and f"sha256 {sha}" in printed
    assert main(["weights", "import", str(source), "--model", "mobilenet_v2"]) == 0  # again: the same file
    assert _stored_sha256(store, "mobilenet_v2") == sha

    model = create_model("mobilenet_v2", 15)
    head_before = model.head.weight.clone()
    report = load_weights(model, "imagenet")
    assert report is not None and report.loaded == len(model.backbone.state_dict()) and not report.head_loaded
    assert torch.equal(model.head.weight, head_before)  # 1000 ImageNet classes vs our 15: a new head
    reference = load_file(str(source))
    assert all(torch.equal(v, reference[k]) for k, v in model.backbone.state_dict().items())
    assert report.provenance == {
        "name": "imagenet",
        "source": "actiscope store",
        "sha256": sha,
        "file": str(store / "mobilenet_v2-imagenet.safetensors"),
    }
    assert weights_provenance(report) == report.provenance
    assert weights_provenance(None) == {"name": "none", "source": "none"}


def test_import_refuses_another_architectures_file(
    shared_weights: Path, offline_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    squeezenet = shared_weights / "squeezenet1_0-imagenet.safetensors"
    assert main(["weights", "import", str(squeezenet), "--model", "mobilenet_v2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "does not fit mobilenet_v2: 312 of 312 backbone tensors missing" in err
    assert "keys this model does not have (e.g. features.0.bias" in err
    assert not (offline_weights / "weights-store" / "mobilenet_v2-imagenet.safetensors").exists()
    # its own architecture takes it: a backbone that is SqueezeNet's features, and its 1000-class conv head
    assert main(["weights", "import", str(squeezenet), "--model", "squeezenet1_0"]) == 0
    report = load_weights(create_model("squeezenet1_0", 4), "imagenet")
    assert report is not None and report.loaded == 52 - 2 and report.head_classes == 1000


def test_import_refuses_a_fine_tuned_head(tmp_path: Path) -> None:
    path = tmp_path / "finetuned.pth"
    torch.save(torchvision.models.squeezenet1_1(num_classes=15).state_dict(), path)
    with pytest.raises(WeightsError, match="backbone but a 15-class head, not the 1000-class ImageNet one"):
        import_weights(path, "squeezenet1_1")


class _Payload:
    """Unpickling this touches `marker`: what a malicious "checkpoint" would do with any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_pickled_code_is_never_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "weights.pt"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    torch.load(path, weights_only=False)  # the payload works: plain unpickling runs it
    assert marker.exists()
    marker.unlink()

    assert main(["weights", "import", str(path), "--model", "resnet18"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a readable weights file: it pickles getattr, not only tensors" in err and "\n" not in err
    with pytest.raises(WeightsError, match="not a readable weights file"):
        load_weights(create_model("resnet18", 3), path)  # --weights PATH
    assert main(["train", str(tmp_path), "--model", "resnet18", "--weights", str(path)]) == 2
    assert "not a readable weights file" in capsys.readouterr().err
    assert not marker.exists()


def test_torchvision_hub_cache_comes_first_then_the_store(offline_weights: Path) -> None:
    stored = torchvision.models.squeezenet1_1()
    torch.save(stored.state_dict(), offline_weights / "stored.pth")
    import_weights(offline_weights / "stored.pth", "squeezenet1_1")
    cached = torchvision.models.squeezenet1_1()
    url = torchvision.models.SqueezeNet1_1_Weights.DEFAULT.url
    cache_file = offline_weights / "torch-home" / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    cache_file.parent.mkdir(parents=True)
    torch.save(cached.state_dict(), cache_file)

    model = create_model("squeezenet1_1", 3)
    report = load_weights(model, "imagenet")
    assert torch.equal(model.backbone.features[0].weight, cached.features[0].weight)
    assert report is not None and report.provenance == {
        "name": "imagenet",
        "source": "torchvision hub cache",
        "sha256": sha256_file(cache_file),
        "file": str(cache_file),
    }
    cache_file.unlink()
    report = load_weights(model, "imagenet")
    assert torch.equal(model.backbone.features[0].weight, stored.features[0].weight)
    assert report is not None and report.provenance["source"] == "actiscope store"


def test_a_download_records_the_file_it_cached(
    offline_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = torchvision.models.squeezenet1_1()

    def download(url: str, dst: str, *args: object, **kwargs: object) -> None:
        torch.save(published.state_dict(), dst)  # what the real download writes into the hub cache

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    model = create_model("squeezenet1_1", 3)
    report = load_weights(model, "imagenet")
    cache_file = next((offline_weights / "torch-home" / "hub" / "checkpoints").iterdir())
    assert report is not None and report.provenance["source"] == "download"
    assert report.provenance["sha256"] == sha256_file(cache_file)
    assert torch.equal(model.backbone.features[0].weight, published.features[0].weight)


def test_store_file_changed_after_import_is_refused(offline_weights: Path) -> None:
    torch.save(torchvision.models.squeezenet1_1().state_dict(), offline_weights / "published.pth")
    stored = import_weights(offline_weights / "published.pth", "squeezenet1_1")
    save_file({"features.0.weight": torch.zeros(1)}, str(stored.file))
    with pytest.raises(WeightsError, match="changed since it was imported"):
        load_weights(create_model("squeezenet1_1", 3), "imagenet")


def test_weights_list(offline_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save(torchvision.models.squeezenet1_1().state_dict(), offline_weights / "published.pth")
    stored = import_weights(offline_weights / "published.pth", "squeezenet1_1")
    url = torchvision.models.MobileNet_V2_Weights.DEFAULT.url
    cache_file = offline_weights / "torch-home" / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(b"found by name; read only when loaded")

    assert main(["weights", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {
        name: (weights, where) for name, weights, where in (line.split(maxsplit=2) for line in lines[1:-1])
    }
    assert rows["simple-cnn"] == ("-", "none published")
    assert rows["squeezenet1_1"] == ("ImageNet", f"store (sha256 {stored.sha256[:12]}…)")
    assert rows["mobilenet_v2"] == ("ImageNet", "torchvision hub cache")
    assert rows["resnet18"] == ("ImageNet", "downloadable")
    assert rows["r3d_18"] == ("Kinetics-400", "downloadable")
    assert "convlstm" not in rows and "cnn-lstm" not in rows  # video models without published weights
    column = lines[0].index("available")
    assert all(line[column - 1] == " " and line[column] != " " for line in lines[1:-1])  # aligned
    assert lines[-1] == f"store: {offline_weights / 'weights-store'}"


def test_timm_weights_from_the_hugging_face_cache(
    offline_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants
    import timm

    published = timm.create_model("resnet10t")
    cache = offline_weights / "hf-cache"
    snapshot = cache / "models--timm--resnet10t.c3_in1k" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    save_file(published.state_dict(), str(snapshot / "model.safetensors"))  # where timm's download lands
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    model = create_model("timm/resnet10t", 3)
    report = load_weights(model, "imagenet")
    assert report is not None and report.provenance["source"] == "timm hub cache"
    assert report.provenance["file"] == str(snapshot / "model.safetensors")
    assert torch.equal(model.backbone.conv1[0].weight, published.conv1[0].weight)
