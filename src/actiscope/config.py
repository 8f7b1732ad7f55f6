"""Training configuration: a frozen dataclass, validated on creation, saved as config.yaml in each run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

# The choices, the recipes and the error come from options.py, where the nested options are declared
# with their help text; this flat dataclass is what the engine still reads until it takes the options.
from actiscope.options import (
    AUGMENTS,
    BALANCES,
    CLOCK_EPOCHS,
    EXPORTS,
    MODES,
    OPTIMIZERS,
    PRECISIONS,
    RECIPES,
    SAMPLING,
    SCHEDULERS,
    ConfigError,
)


@dataclass(frozen=True)
class TrainConfig:
    data: str
    model: str = "simple-cnn"
    format: str | None = None
    split: str | None = None  # an existing split.json; otherwise one is made with val/test/seed
    val: float = 0.15
    test: float = 0.15
    exclude: str | None = None  # files to leave out (data audit's reviewed audit.csv, or a list of paths)
    weights: str = "none"  # none | imagenet | PATH
    mode: str = "scratch"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    backbone_lr_mult: float = 0.1  # finetune: backbone learns this much slower than the head
    head_epochs: int = 0  # finetune: head-only epochs first, on the backbone's features computed once
    freeze: float = 0.0  # finetune: fraction of the backbone's layers, input side first, kept frozen
    optimizer: str = "adamw"
    weight_decay: float = 0.05
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    mixup: float = 0.0  # alpha; 0 disables
    cutmix: float = 0.0
    augment: str = "standard"
    balance: str = "none"
    image_size: int | None = None  # default: the model's own
    frames: int | None = None  # clips: frames per clip (default: the model's own)
    sampling: str = "tsn"  # clips: tsn (a random frame per segment in training) | uniform
    drop_rate: float = 0.0
    views: int = (
        1  # linear, head warm-up: feature passes per training image (the image, then augmented views)
    )
    crop_person: bool = False  # Stanford 40: crop to the person box
    crop_margin: float = 0.1
    early_stopping: int = 0  # patience in epochs; 0 disables
    time_limit: float | None = None  # minutes
    precision: str = "auto"
    channels_last: bool = True
    seed: int = 0
    workers: int = 2
    devices: int = 1
    accelerator: str = "auto"
    num_nodes: int = 1
    out: str = "runs"
    name: str | None = None
    ask: int = 0  # ask every N epochs on a terminal; 0 disables
    cache: bool = True  # decoded-image cache
    export: str = "int8"  # fast CPU inference files added to the package after training

    def __post_init__(self) -> None:
        choices = {"optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "mode": MODES, "augment": AUGMENTS,
                   "balance": BALANCES, "precision": PRECISIONS, "export": EXPORTS,
                   "sampling": SAMPLING}  # fmt: skip
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"--{name.replace('_', '-')} {value!r} is not one of: {', '.join(allowed)}")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "devices": self.devices,
                    "num_nodes": self.num_nodes}  # fmt: skip
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.image_size is not None and self.image_size < 16:
            raise ConfigError(f"--image-size {self.image_size} is too small; use 16 or more")
        if self.frames is not None and not 1 <= self.frames <= 512:
            raise ConfigError(f"--frames {self.frames} must be between 1 and 512")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError(f"--time-limit must be positive minutes, got {self.time_limit}")
        for name in ("label_smoothing", "drop_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        if self.mode in ("linear", "finetune") and self.weights == "none":
            raise ConfigError(
                f"--mode {self.mode} transfers pretrained weights: give --weights imagenet or PATH"
            )
        if not 0 <= self.freeze <= 1:
            raise ConfigError(f"--freeze {self.freeze} must be a fraction between 0 and 1")
        if not 1 <= self.views <= 16:
            raise ConfigError(f"--views {self.views} must be between 1 and 16")
        if self.workers < 0 or self.early_stopping < 0 or self.head_epochs < 0:
            raise ConfigError("--workers, --early-stopping and --head-epochs cannot be negative")

    @classmethod
    def recipe(cls, data: str, *, scratch_recipe: bool = False, **given: Any) -> tuple[TrainConfig, str]:
        """The configuration for what the user gave, every other field from the recipe that fits it:
        with pretrained weights the fine-tuning (or linear) recipe, else the dataclass defaults (or, with
        `scratch_recipe`, the from-scratch recipe). Returns it and one line that says what the recipe set."""
        weights = given.get("weights") or "none"
        mode = given.get("mode") or ("finetune" if weights != "none" else "scratch")
        if mode == "scratch" and not scratch_recipe:
            return cls(data=data, **given), ""
        chosen = {k: v for k, v in RECIPES[mode].items() if k not in given}
        if given.get("time_limit") and mode != "linear" and "epochs" in chosen:
            chosen["epochs"] = CLOCK_EPOCHS  # the budget ends the run; the schedule follows the clock
        config = cls(data=data, **{"mode": mode, **chosen, **given})
        shown = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in chosen.items() if k != "mode")
        source = f"from {weights} weights" if weights != "none" else "from scratch"
        return config, f"recipe: {mode} {source} ({shown or 'all options given'})"

    def to_yaml(self) -> str:
        return yaml.safe_dump(asdict(self), sort_keys=False)

    @classmethod
    def from_yaml(cls, path: Path) -> TrainConfig:
        try:
            raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the run configuration ({exc})") from None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})
