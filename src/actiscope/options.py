"""The training options, declared once: nested frozen dataclasses, each field with its help text.

The command line (`add_arguments`, `given_options`), the run's config.yaml (`to_yaml`, `from_yaml`) and
the recipes are built from these declarations. Every option has one flat key (`lr`, `batch_size`, ...):
its `--flag`, its key in a recipe and in config.yaml as written before the options were nested, and its
key in `TrainOptions.flat()`. A field's key is its name unless its metadata says otherwise (the dataset
is `data.path`, key `data`; the architecture is `model.architecture`, key `model`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from actiscope.errors import ActiscopeError

Optimizer = Literal["adamw", "adam", "adamax", "sgd"]
Scheduler = Literal["cosine", "onecycle", "plateau", "none"]
Mode = Literal["scratch", "linear", "finetune"]
Augment = Literal["none", "light", "standard", "strong"]
Balance = Literal["none", "oversample", "weights", "trim"]
Precision = Literal["auto", "32", "bf16"]
Export = Literal["none", "onnx", "int8"]
Sampling = Literal["tsn", "uniform"]
Logger = Literal["csv", "tensorboard", "mlflow"]  # Lightning's loggers (engine.tracking builds them)

OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
SCHEDULERS: tuple[Scheduler, ...] = get_args(Scheduler)
MODES: tuple[Mode, ...] = get_args(Mode)
AUGMENTS: tuple[Augment, ...] = get_args(Augment)
BALANCES: tuple[Balance, ...] = get_args(Balance)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
EXPORTS: tuple[Export, ...] = get_args(Export)
SAMPLING: tuple[Sampling, ...] = get_args(Sampling)
LOGGERS: tuple[Logger, ...] = get_args(Logger)


class ConfigError(ActiscopeError):
    pass


# Defaults with pretrained weights (`TrainOptions.recipe`), by flat key; an option the user gives wins.
# Measured on har15 with the ImageNet MobileNetV2 (bench/bench_transfer.py): see the README's transfer section.
CLOCK_EPOCHS = 1000  # the epoch bound of a recipe under --time-limit: the clock decides
RECIPES: dict[str, dict[str, Any]] = {
    "finetune": {
        "mode": "finetune",
        # the ImageNet size: 73.1% at 10 minutes against 68.9% at 160 px, in fewer epochs (51 images/s
        # against 70): the pretrained features are better at the size they were trained at
        "image_size": 224,
        "epochs": 10,
        "batch_size": 32,
        "lr": 3e-3,
        "backbone_lr_mult": 0.1,
        "head_epochs": 10,
        "freeze": 0.2,
        "label_smoothing": 0.1,
        "augment": "light",
        "weight_decay": 0.01,
    },
    # from scratch (`--weights none`, and what `--weights auto` falls back to): bench/bench_scratch.py,
    # with what scales with the budget in SCRATCH_BUDGETS
    "scratch": {
        "mode": "scratch",
        "model": "resnet18",
        "image_size": 112,
        "batch_size": 64,
        "epochs": 30,
        "lr": 2e-3,
        "warmup_epochs": 1,
        "label_smoothing": 0.1,
        # more, cheaper epochs (+2.9 points at 10 minutes, +3.9 at 30); train drops the recipe's where the
        # network cannot take it (clips, a ViT) and refuses only a user's own --progressive there
        "progressive": 0.5,
    },
    "linear": {
        "mode": "linear",
        "image_size": 224,  # 66.2% in 1.9 minutes end to end against 63.9% at 192 px in 1.8
        "views": 1,
        "epochs": 30,
        "batch_size": 128,
        "lr": 3e-3,
        "label_smoothing": 0.1,
        "augment": "light",
        "drop_rate": 0.2,
        "weight_decay": 0.05,
    },
}

# From scratch, what scales with the budget (--time-limit, in minutes; a run without one is planned as
# SCRATCH_UNTIMED): a short run that still underfits wants light augmentation and a short average, a long
# one stronger augmentation and a longer average. The first tier whose bound the budget is within.
SCRATCH_UNTIMED = 30.0
SCRATCH_BUDGETS: tuple[tuple[float, dict[str, Any]], ...] = (
    (20.0, {"augment": "light", "ema": 0.99}),
    (float("inf"), {"augment": "standard", "ema": 0.998}),
)


def scratch_budget(minutes: float | None) -> dict[str, Any]:
    """The from-scratch recipe's options that follow the budget, for `minutes` (None: untimed)."""
    budget = minutes or SCRATCH_UNTIMED
    return next(values for bound, values in SCRATCH_BUDGETS if budget <= bound)


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _choices(kind: Any) -> tuple[Any, ...]:
    """The values a Literal type allows (of its members for `tuple[Literal[...], ...]`); () for the rest."""
    if get_origin(kind) is tuple:
        kind = get_args(kind)[0]
    return get_args(kind) if get_origin(kind) is Literal else ()


def _check_choices(options: Any) -> None:
    """Every Literal-typed field (each member of a tuple of them) holds one of its values (the same message
    whichever group holds it)."""
    hints = get_type_hints(type(options))
    for f in dataclasses.fields(options):
        kind, value = hints[f.name], getattr(options, f.name)
        allowed = _choices(kind)
        for member in value if get_origin(kind) is tuple else (value,):
            if allowed and member not in allowed:
                raise ConfigError(f"{_flag(_key(f))} {member!r} is not one of: {', '.join(allowed)}")


def _names(value: Any, flag: str) -> tuple[str, ...]:
    """A list option as a tuple: from "a,b" (the command line), a list (config.yaml) or a tuple; each name
    once, in the order given."""
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{flag} takes names separated by commas, not {value!r}")
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _check_positive(**values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ConfigError(f"{_flag(key)} must be positive, got {value}")


# one sentence for the three counts that may be 0, in whichever group, as before the options were grouped
_NOT_NEGATIVE = "--workers, --early-stopping and --head-epochs cannot be negative"


@dataclass(frozen=True)
class DataOptions:
    """Which samples, split how, loaded and augmented how."""

    path: str = field(metadata={"help": "dataset folder or CSV file", "key": "data"})
    format: str | None = field(default=None, metadata={"help": "dataset layout (default: detected)"})
    split: str | None = field(
        default=None, metadata={"help": "an existing split.json (default: a new stratified split of DATA)"}
    )
    val: float = field(default=0.15, metadata={"help": "fraction of a new split held out for validation"})
    test: float = field(default=0.15, metadata={"help": "fraction of a new split held out for the test"})
    exclude: str | None = field(
        default=None,
        metadata={
            "help": "leave these files out: `data audit`'s audit.csv as reviewed (rows with exclude=yes) or a "
            "list of paths"
        },
    )
    augment: Augment = field(
        default="standard",
        metadata={"help": "training augmentation strength (from scratch: set by the budget)"},
    )
    balance: Balance = field(
        default="none",
        metadata={
            "help": "class imbalance: oversample rare classes, weight the loss, or trim common classes"
        },
    )
    sampling: Sampling = field(
        default="tsn",
        metadata={
            "help": "clips: tsn (a random frame per segment in training) or uniform (evenly spaced frames)"
        },
    )
    crop_person: bool = field(
        default=False, metadata={"help": "Stanford 40: crop each image to its person box"}
    )
    crop_margin: float = field(
        default=0.1, metadata={"help": "--crop-person: margin around the box, a fraction of its size"}
    )
    cache: bool = field(
        default=True, metadata={"help": "decoded-image cache (--no-cache decodes every epoch)"}
    )
    workers: int = field(default=2, metadata={"help": "data loading processes"})

    def __post_init__(self) -> None:
        _check_choices(self)
        if self.workers < 0:
            raise ConfigError(_NOT_NEGATIVE)


@dataclass(frozen=True)
class ModelOptions:
    """The architecture, its input size and the weights it starts from: what building the network takes."""

    architecture: str = field(
        default="simple-cnn",
        metadata={"help": "architecture from `actiscope models`, or timm/<name>", "key": "model"},
    )
    weights: str = field(
        default="none",
        metadata={
            "help": "none | imagenet | auto (imagenet where it can be had here, else none) | PATH to a state-dict "
            "file (torchvision or timm key names)"
        },
    )
    image_size: int | None = field(
        default=None, metadata={"help": "input size in pixels (default: the model's own)"}
    )
    frames: int | None = field(
        default=None, metadata={"help": "clips: frames per clip (default: the model's own)"}
    )
    drop_rate: float = field(default=0.0, metadata={"help": "dropout before the classifier"})

    def __post_init__(self) -> None:
        _check_choices(self)
        if self.image_size is not None and self.image_size < 16:
            raise ConfigError(f"--image-size {self.image_size} is too small; use 16 or more")
        if self.frames is not None and not 1 <= self.frames <= 512:
            raise ConfigError(f"--frames {self.frames} must be between 1 and 512")
        if not 0 <= self.drop_rate < 1:
            raise ConfigError(f"--drop-rate must be in [0, 1), got {self.drop_rate}")


@dataclass(frozen=True)
class OptimOptions:
    """How the weights learn: what transfer learning trains (mode), the loss, the optimiser and its
    schedule: what the LightningModule takes."""

    mode: Mode = field(
        default="scratch",
        metadata={
            "help": "scratch, linear (frozen backbone, cached features) or finetune; --weights makes finetune "
            "the default"
        },
    )
    epochs: int = field(
        default=10,
        metadata={"help": "training epochs (under --time-limit a recipe leaves them to the clock)"},
    )
    batch_size: int = field(default=32, metadata={"help": "samples per training step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    optimizer: Optimizer = field(default="adamw", metadata={"help": "optimiser"})
    weight_decay: float = field(
        default=0.05, metadata={"help": "weight decay (not on biases and norm scales)"}
    )
    scheduler: Scheduler = field(
        default="cosine", metadata={"help": "learning-rate schedule (cosine: with linear warm-up)"}
    )
    warmup_epochs: float = field(default=0.0, metadata={"help": "cosine: epochs of linear warm-up"})
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing of the loss, in [0, 1)"})
    progressive: float = field(
        default=0.0,
        metadata={
            "help": "images: progressive resizing, training first at this fraction of --image-size and growing "
            "to the full size by three quarters of the run (its steps or --time-limit, whichever is further "
            "along); validation and test always at the full size (0: off)"
        },
    )
    ema: float = field(
        default=0.0,
        metadata={
            "help": "decay per step of an exponential moving average of the weights (e.g. 0.998; 0: off): "
            "validation, the best checkpoint and the package use the average; from scratch: set by the budget"
        },
    )
    mixup: float = field(default=0.0, metadata={"help": "images: MixUp alpha (0: off)"})
    cutmix: float = field(default=0.0, metadata={"help": "images: CutMix alpha (0: off)"})
    backbone_lr_mult: float = field(
        default=0.1, metadata={"help": "finetune: backbone learning rate = lr x this"}
    )
    head_epochs: int = field(
        default=0,
        metadata={
            "help": "finetune: head-only epochs before the backbone trains, on its features computed once"
        },
    )
    freeze: float = field(
        default=0.0,
        metadata={
            "help": "finetune: fraction of the backbone's layers (input side first) kept frozen: faster, and "
            "early layers are generic"
        },
    )
    views: int = field(
        default=1,
        metadata={
            "help": "linear, head warm-up: feature passes per training image, the image and then augmented views"
        },
    )

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_positive(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.progressive and not 0.25 <= self.progressive <= 1:
            raise ConfigError(f"--progressive {self.progressive} must be a fraction in [0.25, 1] (0: off)")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"--ema {self.ema} must be a decay in [0, 1), e.g. 0.998 (0: off)")
        if not 0 <= self.freeze <= 1:
            raise ConfigError(f"--freeze {self.freeze} must be a fraction between 0 and 1")
        if not 1 <= self.views <= 16:
            raise ConfigError(f"--views {self.views} must be between 1 and 16")
        if self.head_epochs < 0:
            raise ConfigError(_NOT_NEGATIVE)


@dataclass(frozen=True)
class TrainerOptions:
    """Where and how long the loop runs, and when it stops."""

    precision: Precision = field(
        default="auto",
        metadata={
            "help": "auto (bf16 where this CPU computes it natively and it measured faster and sound), 32 or bf16"
        },
    )
    accelerator: str = field(default="auto", metadata={"help": "Lightning accelerator: auto, cpu, gpu, ..."})
    devices: int = field(
        default=1, metadata={"help": "devices per node (more than one: distributed data parallel)"}
    )
    num_nodes: int = field(default=1, metadata={"help": "machines taking part"})
    time_limit: float | None = field(
        default=None, metadata={"help": "minutes; stops cleanly and keeps the best model (default: no limit)"}
    )
    early_stopping: int = field(default=0, metadata={"help": "patience in epochs (0: off)"})
    channels_last: bool = field(
        default=True, metadata={"help": "images: channels-last memory layout (faster convolutions on CPU)"}
    )
    seed: int = field(
        default=0, metadata={"help": "random seed of the split, the initialisation and the data order"}
    )
    ask: int = field(
        default=0, metadata={"help": "on a terminal, every N epochs ask whether to stop or go on (0: never)"}
    )

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_positive(devices=self.devices, num_nodes=self.num_nodes)
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError(f"--time-limit must be positive minutes, got {self.time_limit}")
        if self.early_stopping < 0:
            raise ConfigError(_NOT_NEGATIVE)


@dataclass(frozen=True)
class OutputOptions:
    """Where the run directory goes and what the package holds besides the PyTorch weights."""

    out: str = field(default="runs", metadata={"help": "parent folder of run directories"})
    name: str | None = field(default=None, metadata={"help": "run name (default: model and time)"})
    export: Export = field(
        default="int8",
        metadata={
            "help": "after training, add ONNX (onnx) and an accuracy-checked int8 model (int8) to the package"
        },
    )
    logger: tuple[Logger, ...] = field(
        default=(),
        metadata={
            "help": "experiment tracking through Lightning's loggers, into RUN/logs: csv, tensorboard, mlflow "
            "(comma-separated or repeated); with any of them the run is also evaluated on its test split"
        },
    )
    mlflow_uri: str | None = field(
        default=None,
        metadata={
            "help": "--logger mlflow: the tracking URI (default: $MLFLOW_TRACKING_URI, else a SQLite store in "
            "RUN/logs)"
        },
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "logger", _names(self.logger, "--logger"))  # frozen: normalised once, here
        _check_choices(self)


@dataclass(frozen=True)
class TrainOptions:
    """Everything `actiscope train` takes; each group validates itself on creation, and this checks what
    spans two groups."""

    data: DataOptions
    model: ModelOptions = field(default_factory=ModelOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    trainer: TrainerOptions = field(default_factory=TrainerOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    # the flat keys a recipe chose rather than the user (TrainOptions.recipe): where they came from, not
    # an option (so not in config.yaml, nor in equality); train drops a recipe's option that does not fit
    # the network, and refuses a user's
    from_recipe: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.optim.mode in ("linear", "finetune") and self.model.weights == "none":
            raise ConfigError(
                f"--mode {self.optim.mode} transfers pretrained weights: give --weights imagenet or PATH"
            )

    @classmethod
    def from_flat(cls, **values: Any) -> TrainOptions:
        """The options from flat keys (`data`, `lr`, ...); each group's missing keys take its defaults.
        An unknown key is a programming error (TypeError), as for a dataclass constructor."""
        unknown = set(values) - _KEYS.keys()
        if unknown:
            raise TypeError(f"unknown training options: {', '.join(sorted(unknown))}")
        groups: dict[str, dict[str, Any]] = {name: {} for name in _GROUPS}
        for key, value in values.items():
            group, name = _KEYS[key]
            groups[group][name] = value
        return cls(**{group: _GROUPS[group](**kwargs) for group, kwargs in groups.items()})

    def flat(self) -> dict[str, Any]:
        """Every option by its flat key: for hyperparameter logs and the code that predates the groups."""
        return {key: getattr(getattr(self, group), name) for key, (group, name) in _KEYS.items()}

    def override(self, **changes: Any) -> TrainOptions:
        """A copy with some options (by flat key) changed, validated again; an option changed is no
        longer the recipe's."""
        changed = TrainOptions.from_flat(**{**self.flat(), **changes})
        return replace(changed, from_recipe=tuple(k for k in self.from_recipe if k not in changes))

    @classmethod
    def recipe(cls, data: str, *, scratch_recipe: bool = False, **given: Any) -> tuple[TrainOptions, str]:
        """The options for what the user gave (flat keys), every other one from the recipe that fits it:
        with pretrained weights the fine-tuning (or linear) recipe; from scratch asked for (`--weights
        none`) or fallen back to (`scratch_recipe`: `--weights auto` found none), the from-scratch recipe;
        with no weights given at all, the plain defaults (the quick simple-cnn baseline). Returns them and
        one line that says what the recipe set."""
        weights = given.get("weights") or "none"
        mode = given.get("mode") or ("finetune" if weights != "none" else "scratch")
        if mode == "scratch" and not (scratch_recipe or given.get("weights") == "none"):
            return cls.from_flat(data=data, **given), ""
        recipe = RECIPES[mode] | (scratch_budget(given.get("time_limit")) if mode == "scratch" else {})
        chosen = {k: v for k, v in recipe.items() if k not in given}
        if given.get("time_limit") and mode != "linear" and "epochs" in chosen:
            chosen["epochs"] = CLOCK_EPOCHS  # the budget ends the run; the schedule follows the clock
        options = cls.from_flat(**{"data": data, "mode": mode, **chosen, **given})
        options = replace(options, from_recipe=tuple(chosen))
        shown = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in chosen.items() if k != "mode")
        source = f"from {weights} weights" if weights != "none" else "from scratch"
        return options, f"recipe: {mode} {source} ({shown or 'all options given'})"

    def to_yaml(self) -> str:
        return yaml.safe_dump({group: asdict(getattr(self, group)) for group in _GROUPS}, sort_keys=False)

    @classmethod
    def from_yaml(cls, path: Path) -> TrainOptions:
        """A run's config.yaml: the nested form `to_yaml` writes, or the flat mapping of every option that
        runs written before the options were grouped hold (so that `--resume` of an old run works).
        Keys this version does not know are ignored."""
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the run configuration ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the run configuration is not a mapping of options")
        if isinstance(raw.get("data"), dict):  # nested: the flat form's `data` is the dataset's path
            flat = {
                key: section[name]
                for key, (group, name) in _KEYS.items()
                if isinstance(section := raw.get(group), dict) and name in section
            }
        else:
            flat = {k: v for k, v in raw.items() if k in _KEYS}
        if not isinstance(flat.get("data"), str):
            raise ConfigError(f"{path}: the run configuration names no dataset (data)")
        return cls.from_flat(**flat)


# group name -> its dataclass, in declaration order (the order of config.yaml and of the --help)
_GROUPS: dict[str, type[Any]] = {
    name: kind for name, kind in get_type_hints(TrainOptions).items() if name != "from_recipe"
}


def _key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


def _option_fields() -> Iterator[tuple[str, dataclasses.Field[Any], Any]]:
    """(group, field, its type) for every option, in declaration order."""
    for group, options in _GROUPS.items():
        hints = get_type_hints(options)
        for f in dataclasses.fields(options):
            yield group, f, hints[f.name]


# flat key -> (group, field name); tests/test_options.py checks that no two options share a key
_KEYS: dict[str, tuple[str, str]] = {_key(f): (group, f.name) for group, f, _ in _option_fields()}
# the options with no default (the dataset): a command's positional argument, not a --flag
_POSITIONAL = {_key(f) for _, f, _ in _option_fields() if f.default is dataclasses.MISSING}


def _optional(kind: Any) -> Any:
    """`int | None` -> int; other types as they are."""
    if get_origin(kind) in (UnionType, Union):
        rest = [a for a in get_args(kind) if a is not NoneType]
        return rest[0] if len(rest) == 1 else kind
    return kind


def _default_help(key: str, default: Any) -> str:
    """The help's tail, e.g. `(default: 0.001; recipes: finetune 0.003, ...)`: the default, and what each
    recipe that sets the option gives it instead (--weights brings a recipe, so the plain default alone
    would mislead). A None default is described by the help text itself."""
    recipes = ", ".join(f"{mode} {values[key]}" for mode, values in RECIPES.items() if key in values)
    shown = []
    if isinstance(default, tuple):
        shown = [f"default: {','.join(default) or 'none'}"]
    elif default is not None:
        shown = [f"default: {('on' if default else 'off') if isinstance(default, bool) else default}"]
    if recipes and key != "mode":
        shown.append(f"recipes: {recipes}")
    return f" ({'; '.join(shown)})" if shown else ""


def add_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One `--flag` per option (by flat key, `skip` left out), with its help text, default and choices.
    Every default is None in the namespace, so that `given_options` tells what the user gave."""
    for _, f, kind in _option_fields():
        key = _key(f)
        if key in _POSITIONAL or key in skip:
            continue
        helptext = str(f.metadata["help"]).replace("%", "%%") + _default_help(key, f.default)
        kind = _optional(kind)
        if kind is bool:
            parser.add_argument(
                _flag(key), action=argparse.BooleanOptionalAction, default=None, help=helptext
            )
            continue
        choices = _choices(kind)
        if get_origin(kind) is tuple:  # a list: comma-separated, or the flag repeated
            parser.add_argument(
                _flag(key),
                type=_comma_separated,
                action="extend",
                default=None,
                metavar="{" + ",".join(choices) + "}[,...]" if choices else None,
                help=helptext,
            )
            continue
        # The parser checks the choices too, so that a typo gets the closest ones (cli.arguments); the
        # options check them again, with the same message, whether from a recipe or a config file.
        parser.add_argument(
            _flag(key),
            type=kind if kind in (int, float) else str,
            default=None,
            choices=choices or None,
            metavar="{" + ",".join(choices) + "}" if choices else None,
            help=helptext,
        )


def _comma_separated(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def given_options(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options the user gave on the command line, by flat key (a recipe or the defaults fill the rest)."""
    return {
        key: getattr(args, key)
        for key in _KEYS
        if key not in _POSITIONAL and key not in skip and getattr(args, key, None) is not None
    }
