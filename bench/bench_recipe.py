"""Benchmark 1 of the training issue: the from-scratch recipe on har15 within a fixed time budget.

    .venv/bin/python bench/bench_recipe.py --split split.json --minutes 30 --out /tmp/bench/runs

The split is made once with `actiscope data split ../shared/data/har15 --out split.json` (70/15/15,
seed 0) and given to the peers too (bench/peers/), so all three see the same train and test images.
The budget covers everything the command does: cache build, training, validation and the test pass.
"""

from __future__ import annotations

import argparse
import json
import time

from actiscope.options import TrainOptions
from actiscope.workflows import train

RECIPE = {
    "model": "resnet18",
    "image_size": 112,
    "batch_size": 64,
    "epochs": 30,  # an upper bound: the cosine schedule follows the time budget (see --time-limit)
    "lr": 2e-3,
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "scheduler": "cosine",
    "warmup_epochs": 1,
    "label_smoothing": 0.1,
    "augment": "standard",
    "workers": 2,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", required=True)
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--out", default="/tmp/bench/runs")
    parser.add_argument("--name", default="recipe")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe values")
    args = parser.parse_args()
    recipe = dict(RECIPE)
    for item in args.set:
        key, value = item.split("=", 1)
        recipe[key] = type(RECIPE.get(key, ""))(value) if key in RECIPE else value
    config = TrainOptions.from_flat(
        data=args.split,
        split=args.split,
        time_limit=args.minutes - 1.5,
        out=args.out,
        name=args.name,
        **recipe,
    )
    start = time.perf_counter()
    result = train(config)
    wall = time.perf_counter() - start
    print(
        json.dumps(
            {
                "tool": "actiscope",
                **recipe,
                "wall_minutes": round(wall / 60, 2),
                "epochs_done": result.epochs,
                **result.metrics,
            }
        )
    )


if __name__ == "__main__":
    main()
