"""Benchmark 2 of the training issue: training images/s, actiscope against a plain PyTorch loop.

    .venv/bin/python bench/bench_throughput.py --split split.json [--images 1024]

Same model (resnet18), batch (64) and image size (112) in one run:
  plain     a hand-written loop: PIL decode + torchvision transforms every epoch, fp32, NCHW
  actiscope `actiscope train` defaults: decoded-image cache, channels_last, --precision auto
  no-cache  actiscope with --no-cache (decode every epoch): what the cache saves
  bf16      actiscope with --precision bf16 (on fewer images when the CPU lacks native bf16)
images/s is measured on the second epoch (the first builds caches and warms up).
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from _subset import subset_manifest  # a sibling module: run as `python bench/...`
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from actiscope.data.split import SplitManifest
from actiscope.hardware import cpu_has_bf16
from actiscope.options import TrainOptions
from actiscope.workflows import train

SIZE, BATCH = 112, 64


class PlainImages(Dataset):
    def __init__(self, manifest: SplitManifest) -> None:
        self.samples = manifest.samples("train")
        self.index = {c: i for i, c in enumerate(manifest.classes)}
        self.transform = transforms.Compose(
            [
                transforms.Resize((SIZE, SIZE)),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            ]
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[i]
        return self.transform(Image.open(sample.path).convert("RGB")), self.index[sample.label]  # type: ignore[index]


def plain_loop(split: Path, epochs: int = 2) -> float:
    manifest = SplitManifest.load(split)
    loader = DataLoader(PlainImages(manifest), batch_size=BATCH, shuffle=True, num_workers=2, drop_last=True)
    model = torchvision.models.resnet18(num_classes=len(manifest.classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    rate = 0.0
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(y)
        rate = seen / (time.perf_counter() - start)
    return rate


def actiscope_rate(split: Path, out: Path, name: str, **overrides: object) -> float:
    config = TrainOptions.from_flat(
        data=str(split),
        split=str(split),
        model="resnet18",
        image_size=SIZE,
        batch_size=BATCH,
        epochs=2,
        workers=2,
        augment="light",
        out=str(out),
        name=name,
        **overrides,
    )  # type: ignore[arg-type]
    train(config)
    with (out / name / "history.csv").open() as fh:
        return float(list(csv.DictReader(fh))[-1]["train_images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", required=True)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument(
        "--bf16-images", type=int, default=None, help="default: --images, or 192 without native bf16"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="actiscope-bench-"))
    split = subset_manifest(args.split, work / "split.json", train=args.images)
    bf16_images = args.bf16_images or (args.images if cpu_has_bf16() else 192)
    bf16_split = subset_manifest(args.split, work / "split-bf16.json", train=bf16_images)
    results = {
        "plain_pytorch_fp32": plain_loop(split),
        "actiscope_default": actiscope_rate(split, work, "default"),
        "actiscope_no_cache": actiscope_rate(split, work, "nocache", cache=False),
        "actiscope_fp32_same_subset_as_bf16": actiscope_rate(bf16_split, work, "fp32small", precision="32"),
        "actiscope_bf16": actiscope_rate(bf16_split, work, "bf16", precision="bf16"),
    }
    print(
        json.dumps(
            {
                "images": args.images,
                "bf16_images": bf16_images,
                "cpu_native_bf16": cpu_has_bf16(),
                "threads": torch.get_num_threads(),
                **{k: round(v, 1) for k, v in results.items()},
            }
        )
    )
    base = results["plain_pytorch_fp32"]
    print(
        f"actiscope vs plain loop: {results['actiscope_default'] / base:.2f}x; cache speed-up: "
        f"{results['actiscope_default'] / results['actiscope_no_cache']:.2f}x; bf16 vs fp32: "
        f"{results['actiscope_bf16'] / results['actiscope_fp32_same_subset_as_bf16']:.2f}x"
    )


if __name__ == "__main__":
    main()
