"""Shared by the peer scripts: read actiscope's split.json and score test predictions the same way."""

from __future__ import annotations

import json
from pathlib import Path


def read_split(path: str) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """(class names, {split: [(absolute path, label), ...]})."""
    manifest = json.loads(Path(path).read_text())
    root = Path(manifest["root"])
    files: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for entry in manifest["entries"]:
        files[entry["split"]].append((str(root / entry["path"]), entry["label"]))
    return manifest["classes"], files


def score(true: list[str], predicted: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "test_acc": round(accuracy_score(true, predicted), 4),
        "test_f1": round(f1_score(true, predicted, average="macro"), 4),
    }


def fastai_setup(split: str, size: int, deadline: float) -> tuple[object, object, list[tuple[str, str]]]:
    """fastai's data loaders on the split's train and val images (squished to `size` like actiscope's
    preprocessing, aug_transforms, batch 64), a callback that stops fitting a minute before `deadline`
    (time.time()) for the test pass, and the test files."""
    import time

    import pandas as pd
    from fastai.callback.core import Callback, CancelFitException
    from fastai.vision.all import ImageDataLoaders, Resize, aug_transforms

    class TimeBudget(Callback):
        def after_batch(self) -> None:
            if time.time() > deadline - 60:
                raise CancelFitException()

    _, files = read_split(split)
    rows = [(p, label, False) for p, label in files["train"]] + [
        (p, label, True) for p, label in files["val"]
    ]
    df = pd.DataFrame(rows, columns=["fname", "label", "is_valid"])
    dls = ImageDataLoaders.from_df(
        df,
        path="/",
        fn_col="fname",
        label_col="label",
        valid_col="is_valid",
        item_tfms=Resize(size, method="squish"),
        batch_tfms=aug_transforms(),
        bs=64,
        num_workers=2,
    )
    return dls, TimeBudget(), files["test"]


def fastai_test_score(learn: object, dls: object, test: list[tuple[str, str]]) -> dict[str, float]:
    probs, _ = learn.get_preds(dl=dls.test_dl([p for p, _ in test]))  # type: ignore[attr-defined]
    predicted = [dls.vocab[i] for i in probs.argmax(1).tolist()]  # type: ignore[attr-defined]
    return score([label for _, label in test], predicted)
