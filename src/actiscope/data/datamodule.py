"""The LightningDataModule for images and clips: split manifest in, batches of (pixels, label) out.

Images are (3, S, S), clips (T, 3, S, S): a clip's frames are sampled from its cached frame pool (the
segment centres, or in training with TSN sampling a random frame per segment) and every frame of a clip
gets the same augmentation. Pixels come from the decoded-media cache (or, with cache=False, from decoding every time, which
is only there to measure what the cache saves). In linear mode the frozen backbone's features are
computed once and the datasets become tensors of features.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, WeightedRandomSampler

from actiscope.data.cache import ImageCache, build_cache, decode_sample
from actiscope.data.config import DataConfig
from actiscope.data.formats import Sample
from actiscope.data.split import SplitManifest
from actiscope.data.transforms import eval_transform, train_transform
from actiscope.data.video import pool_size, sample_frames
from actiscope.errors import DataError, MediaReadError

log = logging.getLogger(__name__)


class MediaSamples(Dataset):
    """Samples with integer labels; pixels from a cache when given, else decoded on every access."""

    def __init__(
        self,
        samples: list[Sample],
        labels: list[int],
        transform: Callable[[torch.Tensor], torch.Tensor],
        *,
        image_size: int,
        cache: ImageCache | None = None,
        crop_margin: float | None = None,
        frames: int | None = None,
        random_frames: bool = False,
    ) -> None:
        self.indices = cache.good if cache is not None else list(range(len(samples)))
        self.samples, self.labels, self.transform = samples, labels, transform
        self.cache, self.image_size, self.crop_margin = cache, image_size, crop_margin
        self.frames, self.random_frames = frames, random_frames

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, n: int) -> tuple[torch.Tensor, int]:
        i = self.indices[n]
        pool = pool_size(self.frames) if self.frames else None
        if self.cache is not None:
            pixels = self.cache.pixels[i]
        else:
            try:
                pixels = decode_sample(self.samples[i], self.image_size, self.crop_margin, pool)
            except MediaReadError:  # never crash mid-epoch; split.py already dropped known-bad files
                log.warning("unreadable during training, using a blank input: %s", self.samples[i].path)
                pixels = np.zeros((*((pool,) if pool else ()), self.image_size, self.image_size, 3), np.uint8)
        if not self.frames:
            return self.transform(torch.from_numpy(np.array(pixels)).permute(2, 0, 1)), self.labels[i]
        rng = None
        if self.random_frames:  # from torch's generator, seeded per worker by Lightning: reproducible
            rng = np.random.default_rng(int(torch.randint(2**31, (1,))))
        chosen = np.array(pixels[sample_frames(len(pixels), self.frames, random=self.random_frames, rng=rng)])
        return self.transform(torch.from_numpy(chosen).permute(0, 3, 1, 2)), self.labels[i]

    def targets(self) -> list[int]:
        return [self.labels[i] for i in self.indices]


class ActionDataModule(L.LightningDataModule):
    def __init__(
        self,
        manifest: SplitManifest,
        data_config: DataConfig,
        *,
        batch_size: int = 32,
        workers: int = 2,
        augment: str = "standard",
        balance: str = "none",
        crop_margin: float | None = None,
        use_cache: bool = True,
        seed: int = 0,
        sampling: str = "tsn",
    ) -> None:
        super().__init__()
        self.manifest, self.data_config = manifest, data_config
        self.frames, self.sampling = data_config.frames, sampling
        self.pool = pool_size(self.frames) if self.frames else None
        self.class_names = manifest.classes
        self.batch_size, self.workers, self.augment, self.balance = batch_size, workers, augment, balance
        self.crop_margin, self.use_cache, self.seed = crop_margin, use_cache, seed
        self.datasets: dict[str, MediaSamples | TensorDataset] = {}  # the latter: cached features
        self.skipped: dict[str, dict[int, str]] = {}

    @property
    def person_crop(self) -> float | None:
        """The margin of the person crops the model trains on, for its model.json: None when it sees
        whole images (no --crop-person, clips, or no training image with a person box)."""
        if self.crop_margin is None or self.frames or not any(s.box for s in self.manifest.samples("train")):
            return None
        return self.crop_margin

    def prepare_data(self) -> None:
        # Called on one process only (rank 0): decode once, the other ranks then open the same files.
        if self.use_cache:
            for split in ("train", "val", "test"):
                build_cache(
                    self.manifest.samples(split),
                    self.data_config.image_size,
                    crop_margin=self.crop_margin,
                    pool=self.pool,
                )

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        index = {name: i for i, name in enumerate(self.class_names)}
        for split in ("train", "val", "test"):
            samples = self.manifest.samples(split)
            cache = None
            if self.use_cache:
                cache = build_cache(
                    samples, self.data_config.image_size, crop_margin=self.crop_margin, pool=self.pool
                )
                self.skipped[split] = cache.bad
                if cache.bad:
                    log.warning(
                        "%s: skipping %d unreadable files (e.g. %s)",
                        split,
                        len(cache.bad),
                        next(iter(cache.bad.values())),
                    )
            transform = (
                train_transform(self.data_config, self.augment)
                if split == "train"
                else eval_transform(self.data_config)
            )
            self.datasets[split] = MediaSamples(
                samples,
                [index[str(s.label)] for s in samples],  # a split's samples are all labelled
                transform,
                image_size=self.data_config.image_size,
                cache=cache,
                crop_margin=self.crop_margin,
                frames=self.frames,
                random_frames=split == "train" and self.sampling == "tsn",
            )
        train = self.datasets["train"]
        if self.balance == "trim" and isinstance(train, MediaSamples):
            self.datasets["train"] = _trimmed(train, self.seed)

    def train_targets(self) -> list[int]:
        dataset = self.datasets["train"]
        if isinstance(dataset, TensorDataset):
            return dataset.tensors[1].tolist()
        return dataset.targets()

    def features(
        self,
        extract: Callable[[torch.Tensor], torch.Tensor],
        splits: tuple[str, ...] = ("train", "val", "test"),
        *,
        batch_size: int = 32,  # measured faster than 64 for MobileNetV2 inference on 2 cores (53 vs 45 images/s)
        views: int = 1,
    ) -> dict[str, TensorDataset]:
        """The frozen backbone's features of every image of `splits`, computed once. Training images get
        `views` passes: the image as evaluated, then `views - 1` views through the augmentation preset
        (crops, flips), so a head trained on them sees variety and overfits less."""
        out = {}
        for split in splits:
            dataset = self.datasets[split]
            passes = [eval_transform(self.data_config)]
            if split == "train":
                passes += [train_transform(self.data_config, self.augment)] * (views - 1)
            feats, labels = [], []
            original = dataset.transform if isinstance(dataset, MediaSamples) else None
            for n, transform in enumerate(passes):
                if isinstance(dataset, MediaSamples):
                    dataset.transform = transform
                with torch.inference_mode():
                    for x, y in self._feature_batches(dataset, batch_size, augmented=n > 0):
                        feats.append(extract(x).float())
                        labels.append(y)
            if isinstance(dataset, MediaSamples) and original is not None:
                dataset.transform = original  # the images train on as before (fine-tuning's warm-up)
            out[split] = (
                TensorDataset(torch.cat(feats), torch.cat(labels))
                if feats  # an empty split (no test images) stays empty
                else TensorDataset(torch.empty(0), torch.empty(0, dtype=torch.long))
            )
        return out

    def _feature_batches(
        self, dataset: Dataset, batch_size: int, *, augmented: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches for a feature pass. Unaugmented cached images are normalised a batch at a time in this
        process (per-image loading measured 256 s against about 150 s for the model alone: MobileNetV2 at
        192 px, 10,200 images, 2 cores); augmented views go through the DataLoader's workers."""
        if not isinstance(dataset, MediaSamples) or dataset.frames or dataset.cache is None or augmented:
            yield from DataLoader(dataset, batch_size=batch_size, num_workers=self.workers)
            return
        cache = dataset.cache
        normalize = eval_transform(self.data_config)
        labels = torch.tensor(dataset.targets())
        for start in range(0, len(dataset.indices), batch_size):
            chosen = dataset.indices[start : start + batch_size]
            pixels = torch.from_numpy(np.ascontiguousarray(cache.pixels[chosen])).permute(0, 3, 1, 2)
            yield normalize(pixels), labels[start : start + batch_size]

    def precompute_features(
        self, extract: Callable[[torch.Tensor], torch.Tensor], views: int = 1
    ) -> dict[str, int]:
        """Linear mode: every split becomes the backbone's features (`features`), and the head trains on
        them. Returns the number of feature rows per split."""
        self.datasets.update(self.features(extract, views=views))
        return {split: len(self.datasets[split]) for split in ("train", "val", "test")}

    def _loader(self, split: str, shuffle: bool = False, sampler: Any = None) -> DataLoader:
        features = isinstance(self.datasets[split], TensorDataset)
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=0 if features else self.workers,
            persistent_workers=bool(self.workers) and not features,
            drop_last=split == "train" and len(self.datasets[split]) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        sampler = None
        if self.balance == "oversample":
            targets = np.asarray(self.train_targets())
            per_sample = 1.0 / np.bincount(targets)[targets]
            generator = torch.Generator().manual_seed(self.seed)
            sampler = WeightedRandomSampler(
                per_sample.tolist(), len(targets), replacement=True, generator=generator
            )
        return self._loader("train", shuffle=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def _trimmed(dataset: MediaSamples, seed: int) -> MediaSamples:
    """Undersample every class to the size of the smallest (--balance trim)."""
    by_class: dict[int, list[int]] = {}
    for i in dataset.indices:
        by_class.setdefault(dataset.labels[i], []).append(i)
    smallest = min(len(v) for v in by_class.values())
    rng = random.Random(seed)
    dataset.indices = sorted(i for members in by_class.values() for i in rng.sample(members, smallest))
    return dataset


def balanced_class_weights(counts: Mapping[str, int]) -> list[float]:
    """Loss weights for --balance weights, from the training images per class (in class order):
    scikit-learn's "balanced" weights, n_images / (n_classes * n_images_of_the_class), so that every class
    weighs the same in total and an image weighs 1 on average."""
    from sklearn.utils.class_weight import compute_class_weight

    empty = [name for name, n in counts.items() if n == 0]
    if empty:  # its weight would be infinite (scikit-learn refuses it)
        raise DataError(
            f"class(es) {', '.join(empty)} have no training images, so --balance weights cannot weigh them; "
            "give them training images or choose another --balance"
        )
    targets = np.repeat(np.arange(len(counts)), list(counts.values()))
    return compute_class_weight("balanced", classes=np.arange(len(counts)), y=targets).tolist()
