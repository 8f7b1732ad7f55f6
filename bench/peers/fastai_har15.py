"""fastai peer: vision_learner(resnet18, pretrained=False) + fit_one_cycle on actiscope's split.

Images squished to --size like actiscope's; split and time budget as bench/bench_scratch.py gives them.
fastai decodes and augments every epoch (its usual pipeline); a callback stops it at the budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import fastai_setup, fastai_test_score


def main() -> None:
    from fastai.vision.all import accuracy, resnet18, vision_learner

    parser = argparse.ArgumentParser()
    parser.add_argument("--split", required=True)
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args()
    start = time.time()
    budget = args.minutes * 60

    dls, budget_stop, test = fastai_setup(args.split, args.size, start + budget)
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    learn.fit_one_cycle(args.epochs, lr_max=args.lr, cbs=[budget_stop])
    result = fastai_test_score(learn, dls, test)
    print(
        json.dumps(
            {
                "tool": "fastai",
                "model": "resnet18",
                "image_size": args.size,
                "epochs": args.epochs,
                "epochs_done": learn.epoch + 1,
                "wall_minutes": round((time.time() - start) / 60, 2),
                **result,
            }
        )
    )


if __name__ == "__main__":
    main()
