"""fastai peer: vision_learner(resnet18, pretrained=False) + fit_one_cycle on actiscope's split.

Same image size (112, squished like actiscope), batch size and time budget as bench/bench_recipe.py.
fastai decodes and augments every epoch (its usual pipeline); a callback stops it at the budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import read_split, score


def main() -> None:
    import pandas as pd
    from fastai.callback.core import Callback, CancelFitException
    from fastai.vision.all import ImageDataLoaders, Resize, accuracy, aug_transforms, resnet18, vision_learner

    parser = argparse.ArgumentParser()
    parser.add_argument("--split", required=True)
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args()
    start = time.time()
    budget = args.minutes * 60

    class TimeBudget(Callback):
        def after_batch(self) -> None:
            if time.time() - start > budget - 60:  # leave a minute for the test pass
                raise CancelFitException()

    _, files = read_split(args.split)
    rows = [(p, label, False) for p, label in files["train"]] + [
        (p, label, True) for p, label in files["val"]
    ]
    df = pd.DataFrame(rows, columns=["fname", "label", "is_valid"])
    dls = ImageDataLoaders.from_df(df, path="/", fn_col="fname", label_col="label", valid_col="is_valid",
                                   item_tfms=Resize(args.size, method="squish"), batch_tfms=aug_transforms(),
                                   bs=64, num_workers=2)  # fmt: skip
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    learn.fit_one_cycle(args.epochs, lr_max=args.lr, cbs=[TimeBudget()])
    test_dl = dls.test_dl([p for p, _ in files["test"]])
    probs, _ = learn.get_preds(dl=test_dl)
    predicted = [dls.vocab[i] for i in probs.argmax(1).tolist()]
    result = score([label for _, label in files["test"]], predicted)
    print(json.dumps({"tool": "fastai", "model": "resnet18", "image_size": args.size, "epochs": args.epochs,
                      "epochs_done": learn.epoch + 1, "wall_minutes": round((time.time() - start) / 60, 2), **result}))  # fmt: skip


if __name__ == "__main__":
    main()
