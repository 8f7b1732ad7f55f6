"""The training options as keyword arguments of the Python API: typed (a type checker and an editor see
every option with its type) and checked at run time as Python checks a function's arguments.

tests/test_api.py checks that these are exactly the options of options.py, with their types: an option
added there is added here.
"""

from __future__ import annotations

import difflib
import numbers
import os
from collections.abc import Mapping
from types import NoneType, UnionType
from typing import Any, Literal, TypedDict, Union, get_args, get_origin, get_type_hints

from actiscope.options import (
    Augment,
    Balance,
    Export,
    Logger,
    Mode,
    Optimizer,
    Precision,
    Sampling,
    Scheduler,
)

StrPath = str | os.PathLike[str]


class CompareArguments(TypedDict, total=False):
    """The training options by their flat keys, as keyword arguments (what each means: options.py, or
    `actiscope train --help`). An option left out, or given as None, is the recipe's or the default,
    as one left off the command line. These are compare's; train takes three more (TrainArguments).
    tests/test_api.py checks that they are exactly options.py's, with its types."""

    format: str | None
    split: StrPath | None
    val: float
    test: float
    exclude: StrPath | None
    augment: Augment
    balance: Balance
    sampling: Sampling
    crop_person: bool
    crop_margin: float
    cache: bool
    workers: int
    weights: StrPath
    image_size: int | None
    frames: int | None
    drop_rate: float
    mode: Mode
    epochs: int
    batch_size: int
    lr: float
    optimizer: Optimizer
    weight_decay: float
    scheduler: Scheduler
    warmup_epochs: float
    label_smoothing: float
    progressive: float
    ema: float
    mixup: float
    cutmix: float
    backbone_lr_mult: float
    head_epochs: int
    freeze: float
    views: int
    precision: Precision
    accelerator: str
    devices: int
    num_nodes: int
    time_limit: float | None
    early_stopping: int
    channels_last: bool
    seed: int
    ask: int
    export: Export
    logger: tuple[Logger, ...]
    mlflow_uri: str | None


class TrainArguments(CompareArguments, total=False):
    """Every training option but the dataset: compare's, and the architecture and where its run goes."""

    model: str
    out: StrPath
    name: str | None


COMPARE_OWNS = ("model", "name", "out")  # compare names and places each architecture's run itself


def given_options(options: Mapping[str, Any], arguments: type, verb: str) -> dict[str, Any]:
    """The options given by keyword, by flat key, checked as Python checks a function's arguments (an
    unknown name or a value of another type is a TypeError); None means not given, a path becomes a str."""
    hints = get_type_hints(arguments)
    given = {}
    for key, value in options.items():
        if key not in hints:
            close = difflib.get_close_matches(key, list(hints), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"{verb}() got an unexpected keyword argument {key!r}{hint}")
        if value is not None:
            given[key] = _as_type(
                verb, key, os.fspath(value) if isinstance(value, os.PathLike) else value, hints[key]
            )
    return given


def _as_type(verb: str, key: str, value: Any, hint: Any) -> Any:
    """`value` as the option's type: a whole number (NumPy's too) for an int, a real number for a float,
    a str for a name, a choice or a path (TrainOptions checks choices and ranges, with the CLI's words)."""
    kinds = {_base(kind) for kind in (get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,))}
    if bool in kinds:
        ok, converted = isinstance(value, bool), value
    elif int in kinds:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        converted = int(value) if ok else value
    elif float in kinds:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        converted = float(value) if ok else value
    else:
        ok, converted = isinstance(value, str), value
    if not ok:
        wanted = " or ".join(sorted(k.__name__ for k in kinds - {NoneType}))
        raise TypeError(f"{verb}(): {key}={value!r}: expected {wanted}, got {type(value).__name__}")
    return converted


def _base(kind: Any) -> type:
    """The Python type an option's type stands for: str for a choice (Literal) or a path."""
    if get_origin(kind) is Literal or get_origin(kind) is os.PathLike:
        return str
    return kind if isinstance(kind, type) else object
