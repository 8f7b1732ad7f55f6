"""Benchmark 3 of the training issue: linear mode, cached features against a frozen backbone per step.

    .venv/bin/python bench/bench_linear.py --split split.json [--images 1024]

Both train only resnet18's head. `linear` runs the backbone once per image and trains on stored
features; the comparison is finetune with every epoch head-only (--head-epochs = --epochs), which runs
the frozen backbone on every batch, as a plain transfer-learning loop does. Pretrained weights cannot
be downloaded here, so a weights file of the right shape is written first: timing does not depend on
the values.
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

from actiscope.options import TrainOptions
from actiscope.workflows import train


def epoch_seconds(run: Path) -> list[float]:
    with (run / "history.csv").open() as fh:
        return [float(r["seconds"]) for r in csv.DictReader(fh)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", required=True)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="actiscope-linear-"))
    split = subset_manifest(args.split, work / "split.json", train=args.images)
    weights = work / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    common = {
        "data": str(split),
        "split": str(split),
        "model": "resnet18",
        "image_size": 112,
        "batch_size": 64,
        "epochs": args.epochs,
        "weights": str(weights),
        "workers": 2,
        "out": str(work),
        "lr": 1e-2,
    }
    start = time.perf_counter()
    train(TrainOptions.from_flat(**common, mode="linear", name="linear"))  # type: ignore[arg-type]
    linear_total = time.perf_counter() - start
    start = time.perf_counter()
    train(TrainOptions.from_flat(**common, mode="finetune", head_epochs=args.epochs, name="frozen"))  # type: ignore[arg-type]
    frozen_total = time.perf_counter() - start
    linear, frozen = epoch_seconds(work / "linear"), epoch_seconds(work / "frozen")
    print(
        json.dumps(
            {
                "images": args.images,
                "linear_epoch_s": linear,
                "frozen_backbone_epoch_s": frozen,
                "linear_total_s": round(linear_total, 1),
                "frozen_total_s": round(frozen_total, 1),
            }
        )
    )
    print(
        f"per epoch after the first: {frozen[-1]:.2f} s -> {linear[-1]:.3f} s ({frozen[-1] / linear[-1]:.0f}x)"
    )


if __name__ == "__main__":
    main()
