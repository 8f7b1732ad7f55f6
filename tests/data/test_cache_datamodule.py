from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from actiscope.data import cache as cache_module
from actiscope.data.cache import build_cache
from actiscope.data.config import DataConfig
from actiscope.data.datamodule import ActionDataModule, balanced_class_weights
from actiscope.data.formats import load_dataset
from actiscope.data.split import make_split
from actiscope.data.transforms import train_transform
from actiscope.errors import DataError
from tests.conftest import write_class_folders, write_image


def test_cache_decodes_once_and_notices_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_class_folders(tmp_path / "d", {"a": 3, "b": 2})
    (tmp_path / "d" / "b" / "bad.jpg").write_bytes(b"xx")
    samples = load_dataset(tmp_path / "d").samples
    first = build_cache(samples, 16, workers=1)
    assert first.pixels.shape == (6, 16, 16, 3) and first.pixels.dtype == np.uint8
    bad_index = next(i for i, s in enumerate(samples) if s.path.name == "bad.jpg")
    assert list(first.bad) == [bad_index] and "not an image" in first.bad[bad_index]
    assert len(first.good) == 5

    def must_not_decode(*args: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_module, "_decode_chunk", must_not_decode)
    again = build_cache(samples, 16, workers=1)
    assert np.array_equal(np.asarray(again.pixels), np.asarray(first.pixels))
    write_image(samples[0].path, 1234)  # the file changed: a new cache is needed
    with pytest.raises(AssertionError, match="decoded again"):
        build_cache(samples, 16, workers=1)


@pytest.mark.parametrize("preset", ["none", "light", "standard", "strong"])
def test_augment_presets_keep_the_model_input_shape(preset: str) -> None:
    transform = train_transform(DataConfig(24), preset)
    out = transform(torch.randint(0, 255, (3, 24, 24), dtype=torch.uint8))
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32


def _datamodule(root: Path, **kw: object) -> ActionDataModule:
    write_class_folders(root, {"big": 30, "small": 6})
    manifest = make_split(load_dataset(root), val=0.2, test=0.2, workers=1)
    dm = ActionDataModule(manifest, DataConfig(16), batch_size=8, workers=0, **kw)  # type: ignore[arg-type]
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_oversample_balances_what_training_sees(tmp_path: Path) -> None:
    dm = _datamodule(tmp_path, balance="oversample")
    seen = torch.cat([y for _, y in dm.train_dataloader()]).tolist() * 1
    for _ in range(5):
        seen += torch.cat([y for _, y in dm.train_dataloader()]).tolist()
    share_small = seen.count(dm.class_names.index("small")) / len(seen)
    assert 0.35 < share_small < 0.65  # 4 of 22 train images, but about half of what is drawn


def test_trim_and_weights(tmp_path: Path) -> None:
    trimmed = _datamodule(tmp_path / "t", balance="trim")
    assert np.bincount(trimmed.train_targets()).tolist() == [4, 4]
    weighted = _datamodule(tmp_path / "w", balance="weights")
    counts = dict(zip(weighted.class_names, np.bincount(weighted.train_targets()).tolist(), strict=True))
    big, small = balanced_class_weights(counts)
    assert small / big == pytest.approx(18 / 4)


def test_balanced_class_weights_are_the_inverse_frequencies() -> None:
    counts = {"a": 90, "b": 30, "c": 7}
    weights = balanced_class_weights(counts)
    total = sum(counts.values())
    # the numbers training used before scikit-learn made them: n_images / (n_classes * n_images_of_the_class)
    assert weights == pytest.approx([total / (3 * n) for n in counts.values()], rel=1e-12)
    assert sum(w * n for w, n in zip(weights, counts.values(), strict=True)) == pytest.approx(total)
    with pytest.raises(DataError, match=r"class\(es\) b have no training images"):
        balanced_class_weights({"a": 4, "b": 0})


def test_linear_mode_features_are_computed_once(tmp_path: Path) -> None:
    dm = _datamodule(tmp_path)
    calls = []

    def extract(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return x.mean(dim=(2, 3))

    dm.precompute_features(extract)
    assert sum(calls) == sum(len(dm.datasets[s]) for s in ("train", "val", "test"))
    batches = list(dm.train_dataloader()) + list(dm.train_dataloader())  # two epochs, no new calls
    assert sum(calls) == 36 and batches[0][0].shape[1] == 3
