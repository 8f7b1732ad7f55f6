"""The training options of `actiscope train` and `actiscope compare`, one per TrainConfig field.

Only the options the user gives reach the configuration (`given_train_options`); the recipe fills the
rest (`TrainConfig.recipe`). The pair `add_train_options` / `given_train_options` is the whole bridge
between argparse and the configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from actiscope.config import (
    AUGMENTS,
    BALANCES,
    EXPORTS,
    MODES,
    OPTIMIZERS,
    PRECISIONS,
    SAMPLING,
    SCHEDULERS,
    TrainConfig,
)

TRAIN_HELP = {
    "model": "architecture from `actiscope models`, or timm/<name>",
    "split": "an existing split.json (default: a new stratified split of DATA)",
    "exclude": "leave these files out: `data audit`'s audit.csv as reviewed (rows with exclude=yes) or a list of paths",
    "weights": "none | imagenet | auto (imagenet where it can be had here, else none) | PATH to a state-dict "
    "file (torchvision or timm key names)",
    "mode": "scratch | linear (frozen backbone, cached features) | finetune (the default with --weights)",
    "views": "linear: feature passes per training image, the image and then augmented views",
    "head_epochs": "finetune: head-only epochs before the backbone trains, on its features computed once",
    "backbone_lr_mult": "finetune: backbone learning rate = lr x this",
    "freeze": "finetune: fraction of the backbone's layers (input side first) kept frozen: faster, and "
    "early layers are generic",
    "precision": "auto (bf16 where this CPU computes it natively and it measured faster and sound) | 32 | bf16",
    "time_limit": "minutes; stops cleanly and keeps the best model",
    "early_stopping": "patience in epochs (0: off)",
    "ask": "on a terminal, every N epochs ask whether to stop or go on",
    "crop_person": "Stanford 40: crop each image to its person box",
    "cache": "decoded-image cache (--no-cache decodes every epoch)",
    "out": "parent folder of run directories",
    "name": "run name (default: model and time)",
    "export": "after training, add ONNX (onnx) and an accuracy-checked int8 model (int8) to the package",
}

# The fields with a fixed set of values, and the lists the configuration validates them against.
TRAIN_CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "mode": MODES,
    "augment": AUGMENTS,
    "balance": BALANCES,
    "precision": PRECISIONS,
    "export": EXPORTS,
    "sampling": SAMPLING,
}


def add_train_options(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """One option per TrainConfig field, typed from its annotation, all defaulting to None (not given)."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("data", *skip):
            continue
        flag = "--" + f.name.replace("_", "-")
        helptext = TRAIN_HELP.get(f.name)
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split("|")[0].strip(), str)  # "int | None" -> int
        parser.add_argument(flag, type=kind, default=None, choices=TRAIN_CHOICES.get(f.name), help=helptext)


def given_train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields the user set on the command line."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None and f.name != "data"
    }


def train_config(args: argparse.Namespace, data: str) -> tuple[TrainConfig, list[str]]:
    """The configuration the options and the recipe give, and the lines that say what was chosen."""
    given = given_train_options(args)
    lines = []
    if given.get("weights") == "auto":
        from actiscope.models.weights import resolve_auto

        given["weights"], why = resolve_auto(given.get("model", TrainConfig.model))
        if why:
            lines.append(f"training from scratch: {why}")
    config, recipe = TrainConfig.recipe(data, scratch_recipe=bool(lines), **given)
    return config, [*lines, *([recipe] if recipe else [])]
