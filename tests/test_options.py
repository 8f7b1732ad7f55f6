"""The training options: declared once, with help text, choices and defaults that reach the command line,
the recipes and config.yaml, and old flat config.yaml files that still load."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from actiscope.options import (
    CLOCK_EPOCHS,
    OPTIMIZERS,
    RECIPES,
    SCRATCH_BUDGETS,
    SCRATCH_UNTIMED,
    ConfigError,
    DataOptions,
    ModelOptions,
    OptimOptions,
    OutputOptions,
    TrainerOptions,
    TrainOptions,
    add_arguments,
    given_options,
    scratch_budget,
)

# Written by `TrainConfig.to_yaml()` (actiscope/config.py at d1704f4, before the options were grouped): a
# fine-tuning recipe under a time limit, with non-default values in every group. Keep it byte for byte.
FLAT_CONFIG = Path(__file__).parent / "fixtures" / "flat_config.yaml"
GROUPS = (DataOptions, ModelOptions, OptimOptions, TrainerOptions, OutputOptions)


def _fields() -> list[dataclasses.Field[Any]]:
    return [f for group in GROUPS for f in dataclasses.fields(group)]


def _parser(skip: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser, skip=skip)
    return parser


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.option_strings[0]: a for a in parser._actions if a.option_strings and a.dest != "help"}


def test_every_option_has_help_and_one_flat_key_as_the_old_config() -> None:
    assert all(str(f.metadata.get("help", "")).strip() for f in _fields())
    flat = TrainOptions.from_flat(data="x").flat()
    assert len(flat) == len(_fields())  # no two options share a key
    assert list(flat) == [str(f.metadata.get("key", f.name)) for f in _fields()]
    # the old run's keys, and the options added since (--exclude, for `data audit`; experiment tracking;
    # progressive resizing and the moving average of the weights)
    added = {"exclude", "logger", "mlflow_uri", "progressive", "ema"}
    assert set(flat) == set(yaml.safe_load(FLAT_CONFIG.read_text(encoding="utf-8"))) | added
    assert {k for recipe in RECIPES.values() for k in recipe} <= set(flat)


def test_cli_flags_show_help_defaults_and_choices() -> None:
    actions = _actions(_parser())
    keys = set(TrainOptions.from_flat(data="x").flat()) - {"data"}  # the dataset is the command's argument
    assert set(actions) == {"--" + k.replace("_", "-") for k in keys}
    assert all(a.default is None and a.help for a in actions.values())  # None: "not given"
    assert (
        actions["--lr"].help
        == "peak learning rate (default: 0.001; recipes: finetune 0.003, scratch 0.002, linear 0.003)"
    )
    assert "(default: standard; recipes: finetune light, linear light)" in str(actions["--augment"].help)
    assert "(default: on)" in str(actions["--cache"].help) and "(default: off)" in str(
        actions["--crop-person"].help
    )
    assert str(actions["--image-size"].help).endswith(
        "(default: the model's own) (recipes: finetune 224, scratch 112, linear 224)"
    )
    assert actions["--optimizer"].metavar == "{" + ",".join(OPTIMIZERS) + "}"
    assert actions["--precision"].metavar == "{auto,32,bf16}" and actions["--lr"].metavar is None
    assert "--model" not in _actions(_parser(skip=("model", "name", "out")))
    assert "--name" not in _actions(_parser(skip=("model", "name", "out")))


def test_cli_types_booleans_and_what_was_given() -> None:
    parser = _parser()
    args = parser.parse_args(
        [
            "--batch-size",
            "8",
            "--time-limit",
            "1.5",
            "--image-size",
            "32",
            "--no-cache",
            "--channels-last",
            "--weights",
            "imagenet",
            "--precision",
            "32",
        ]
    )
    given = given_options(args)
    assert given == {
        "batch_size": 8,
        "time_limit": 1.5,
        "image_size": 32,
        "cache": False,
        "channels_last": True,
        "weights": "imagenet",
        "precision": "32",
    }
    assert [type(given[k]) for k in ("batch_size", "time_limit", "image_size")] == [int, float, int]
    assert given_options(parser.parse_args([])) == {}
    args.out = Path("compare")  # a command's own --out (compare) is not the options' --out when skipped
    assert "out" in given_options(args) and "out" not in given_options(args, skip=("out",))
    options = TrainOptions.from_flat(data="d", **given)
    assert (options.optim.batch_size, options.data.cache, options.trainer.precision) == (8, False, "32")
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "three"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "lion"}, "--optimizer 'lion' is not one of: adamw, adam, adamax, sgd"),
        ({"scheduler": "step"}, "--scheduler 'step' is not one of: cosine, onecycle, plateau, none"),
        ({"mode": "full"}, "--mode 'full' is not one of: scratch, linear, finetune"),
        ({"augment": "max"}, "--augment 'max' is not one of: none, light, standard, strong"),
        ({"balance": "x"}, "--balance 'x' is not one of: none, oversample, weights, trim"),
        ({"precision": "16"}, "--precision '16' is not one of: auto, 32, bf16"),
        ({"export": "tflite"}, "--export 'tflite' is not one of: none, onnx, int8"),
        ({"sampling": "dense"}, "--sampling 'dense' is not one of: tsn, uniform"),
        ({"epochs": 0}, "--epochs must be positive, got 0"),
        ({"lr": -1.0}, "--lr must be positive, got -1.0"),
        ({"batch_size": 0}, "--batch-size must be positive, got 0"),
        ({"devices": 0}, "--devices must be positive, got 0"),
        ({"num_nodes": 0}, "--num-nodes must be positive, got 0"),
        ({"image_size": 8}, "--image-size 8 is too small; use 16 or more"),
        ({"frames": 0}, "--frames 0 must be between 1 and 512"),
        ({"time_limit": 0}, "--time-limit must be positive minutes, got 0"),
        ({"label_smoothing": 1.0}, "--label-smoothing must be in [0, 1), got 1.0"),
        ({"drop_rate": -0.1}, "--drop-rate must be in [0, 1), got -0.1"),
        ({"mode": "linear"}, "--mode linear transfers pretrained weights: give --weights imagenet or PATH"),
        ({"freeze": 1.5}, "--freeze 1.5 must be a fraction between 0 and 1"),
        ({"views": 17}, "--views 17 must be between 1 and 16"),
        ({"workers": -1}, "--workers, --early-stopping and --head-epochs cannot be negative"),
        ({"early_stopping": -1}, "--workers, --early-stopping and --head-epochs cannot be negative"),
        ({"head_epochs": -1}, "--workers, --early-stopping and --head-epochs cannot be negative"),
    ],
)
def test_bad_values_are_one_line_config_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TrainOptions.from_flat(data="d", **changes)
    assert str(caught.value) == message
    with pytest.raises(ConfigError):  # the same when a group is built on its own
        TrainOptions.from_flat(data="d").override(**changes)


def test_groups_validate_themselves_and_the_whole_what_spans_groups() -> None:
    with pytest.raises(ConfigError, match="--optimizer 'lion'"):
        OptimOptions(optimizer="lion")  # type: ignore[arg-type]  # the wrong value is the point
    finetune = OptimOptions(mode="finetune")  # the LightningModule's part alone: no weights in it
    with pytest.raises(ConfigError, match="--mode finetune transfers pretrained weights"):
        TrainOptions(DataOptions("d"), optim=finetune)
    assert TrainOptions(DataOptions("d"), ModelOptions(weights="imagenet"), finetune).optim.mode == "finetune"


def test_flat_view_and_override() -> None:
    options = TrainOptions.from_flat(data="d", model="resnet18", lr=0.01, seed=4, name="r")
    assert (options.data.path, options.model.architecture, options.optim.lr) == ("d", "resnet18", 0.01)
    assert (options.trainer.seed, options.output.name) == (4, "r")
    assert TrainOptions.from_flat(**options.flat()) == options
    later = options.override(epochs=20, time_limit=5.0)
    assert (later.optim.epochs, later.trainer.time_limit, later.optim.lr) == (20, 5.0, 0.01)
    assert options.optim.epochs == 10  # frozen: override made a copy
    with pytest.raises(TypeError, match="unknown training options: learning_rate"):
        TrainOptions.from_flat(data="d", learning_rate=0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.optim.lr = 1.0  # type: ignore[misc]  # assigning is what must fail


def test_pretrained_weights_bring_the_finetune_recipe() -> None:
    options, line = TrainOptions.recipe("data", model="mobilenet_v2", weights="imagenet")
    assert options.optim.mode == "finetune" and line.startswith("recipe: finetune from imagenet weights (")
    flat = options.flat()
    for key, value in RECIPES["finetune"].items():
        assert flat[key] == value
    given, line = TrainOptions.recipe(
        "data", model="mobilenet_v2", weights="imagenet", lr=1e-4, image_size=192
    )
    assert (given.optim.lr, given.model.image_size, given.optim.head_epochs) == (
        1e-4,
        192,
        RECIPES["finetune"]["head_epochs"],
    )
    assert "lr" not in line.replace("backbone-lr", "") and "image-size" not in line  # the user's own
    linear, line = TrainOptions.recipe("data", model="mobilenet_v2", weights="imagenet", mode="linear")
    assert (
        linear.optim.mode == "linear" and linear.optim.views == RECIPES["linear"]["views"] and "views" in line
    )
    scratch, line = TrainOptions.recipe("data", model="mobilenet_v2")
    assert scratch == TrainOptions.from_flat(data="data", model="mobilenet_v2") and line == ""


def test_recipe_lines_time_limit_and_scratch_recipe() -> None:
    _, line = TrainOptions.recipe("d", weights="w.pth", image_size=32, epochs=2)
    assert line.startswith(
        "recipe: finetune from w.pth weights (batch-size 32, lr 0.003, backbone-lr-mult 0.1"
    )
    clocked, line = TrainOptions.recipe("d", weights="imagenet", time_limit=30.0)
    assert clocked.optim.epochs == CLOCK_EPOCHS and f"epochs {CLOCK_EPOCHS}" in line
    linear, _ = TrainOptions.recipe("d", weights="imagenet", mode="linear", time_limit=30.0)
    assert linear.optim.epochs == RECIPES["linear"]["epochs"]  # linear epochs are cheap: no clock bound
    fallback, line = TrainOptions.recipe("d", model="simple-cnn", scratch_recipe=True)
    assert (
        line
        == "recipe: scratch from scratch (image-size 112, batch-size 64, epochs 30, lr 0.002, warmup-epochs 1, "
        "label-smoothing 0.1, progressive 0.5, augment standard, ema 0.998)"
    )
    assert (fallback.optim.warmup_epochs, fallback.model.weights) == (1, "none")
    given = {k: v for k, v in RECIPES["finetune"].items() if k != "mode"}
    _, line = TrainOptions.recipe("d", weights="imagenet", **given)
    assert line == "recipe: finetune from imagenet weights (all options given)"
    with pytest.raises(ConfigError, match="--optimizer 'lion'"):
        TrainOptions.recipe("d", weights="imagenet", optimizer="lion")


def test_scratch_recipe_follows_the_budget() -> None:
    asked, line = TrainOptions.recipe("d", weights="none", time_limit=10.0)
    assert asked.model.architecture == RECIPES["scratch"]["model"] and asked.model.weights == "none"
    assert line.startswith(
        f"recipe: scratch from scratch (model {RECIPES['scratch']['model']}, image-size 112"
    )
    short, long = asked.flat(), TrainOptions.recipe("d", weights="none", time_limit=30.0)[0].flat()
    tiers = [(o["augment"], o["ema"], o["progressive"]) for o in (short, long)]
    assert tiers == [("light", 0.99, 0.5), ("standard", 0.998, 0.5)]
    assert short["epochs"] == long["epochs"] == CLOCK_EPOCHS  # the clock ends both
    untimed = TrainOptions.recipe("d", weights="none")[0].flat()
    assert scratch_budget(SCRATCH_UNTIMED).items() <= untimed.items()
    assert untimed["epochs"] == RECIPES["scratch"]["epochs"]
    # every tier is reachable, in order, and the bounds are within budgets
    assert [scratch_budget(bound) for bound, _ in SCRATCH_BUDGETS[:-1]] == [
        v for _, v in SCRATCH_BUDGETS[:-1]
    ]
    assert scratch_budget(1e6) == SCRATCH_BUDGETS[-1][1]
    mine, line = TrainOptions.recipe("d", weights="none", time_limit=10.0, augment="strong", ema=0.0)
    assert (
        (mine.data.augment, mine.optim.ema) == ("strong", 0.0) and "augment" not in line and "ema" not in line
    )


def test_the_options_know_which_a_recipe_chose() -> None:
    """from_recipe: the keys the recipe set, not those given; an override makes an option the user's; it
    is no option, so config.yaml leaves it out."""
    options, _ = TrainOptions.recipe("d", weights="none", time_limit=30.0, lr=0.01)
    assert {"progressive", "ema", "model"} <= set(options.from_recipe) and "lr" not in options.from_recipe
    assert "time_limit" not in options.from_recipe and "weights" not in options.from_recipe
    changed = options.override(progressive=0.25, batch_size=16)
    assert "progressive" not in changed.from_recipe and "ema" in changed.from_recipe
    assert TrainOptions.from_flat(data="d").from_recipe == () and "from_recipe" not in options.to_yaml()


def test_config_yaml_is_nested_and_round_trips(tmp_path: Path) -> None:
    options, _ = TrainOptions.recipe(
        "data/set",
        weights="imagenet",
        time_limit=2.5,
        cache=False,
        name="r",
        export="none",
        frames=8,
        devices=2,
    )
    text = options.to_yaml()
    raw = yaml.safe_load(text)
    assert list(raw) == ["data", "model", "optim", "trainer", "output"]
    assert raw["data"]["path"] == "data/set" and raw["model"]["architecture"] == "simple-cnn"
    assert (
        raw["optim"]["lr"] == 0.003 and raw["trainer"]["devices"] == 2 and raw["output"]["export"] == "none"
    )
    path = tmp_path / "options.yaml"
    path.write_text(text, encoding="utf-8")
    assert TrainOptions.from_yaml(path) == options


def test_an_old_flat_config_yaml_loads_to_the_same_values() -> None:
    old = yaml.safe_load(FLAT_CONFIG.read_text(encoding="utf-8"))
    options = TrainOptions.from_yaml(FLAT_CONFIG)
    # the options it predates take their defaults
    assert options.flat() == old | {
        "exclude": None,
        "logger": (),
        "mlflow_uri": None,
        "progressive": 0.0,
        "ema": 0.0,
    }
    assert options.data == DataOptions(
        path="datasets/har15",
        split="datasets/har15/split.json",
        augment="light",
        crop_person=True,
        cache=False,
        workers=4,
    )
    assert options.model == ModelOptions(architecture="mobilenet_v2", weights="imagenet", image_size=160)
    assert options.optim == OptimOptions(
        mode="finetune",
        epochs=CLOCK_EPOCHS,
        lr=0.003,
        weight_decay=0.01,
        label_smoothing=0.1,
        head_epochs=10,
        freeze=0.2,
    )
    assert options.trainer == TrainerOptions(time_limit=30.0, channels_last=False, seed=3, early_stopping=5)
    assert options.output == OutputOptions(name="mnv2-har15", export="onnx")


def test_unknown_keys_are_ignored_and_unusable_files_are_config_errors(tmp_path: Path) -> None:
    flat = yaml.safe_load(FLAT_CONFIG.read_text(encoding="utf-8"))
    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump({**flat, "retired_option": 3}), encoding="utf-8")
    assert TrainOptions.from_yaml(path) == TrainOptions.from_yaml(FLAT_CONFIG)
    nested = yaml.safe_load(TrainOptions.from_yaml(FLAT_CONFIG).to_yaml())
    nested["optim"]["retired_option"] = 3
    nested["callbacks"] = {"x": 1}
    path.write_text(yaml.safe_dump(nested), encoding="utf-8")
    assert TrainOptions.from_yaml(path) == TrainOptions.from_yaml(FLAT_CONFIG)
    nested["optim"]["optimizer"] = "lion"
    path.write_text(yaml.safe_dump(nested), encoding="utf-8")
    with pytest.raises(ConfigError, match="--optimizer 'lion' is not one of"):
        TrainOptions.from_yaml(path)
    for text, message in [
        ("data: [unclosed", "cannot read the run configuration"),
        ("- a list", "not a mapping of options"),
        ("lr: 0.1", "names no dataset"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            TrainOptions.from_yaml(path)
    with pytest.raises(ConfigError, match="cannot read the run configuration"):
        TrainOptions.from_yaml(tmp_path / "missing.yaml")


def test_loggers_comma_separated_or_repeated_and_through_config_yaml(tmp_path: Path) -> None:
    actions = _actions(_parser())
    assert actions["--logger"].metavar == "{csv,tensorboard,mlflow}[,...]"
    assert str(actions["--logger"].help).endswith("(default: none)")
    args = _parser().parse_args(["--logger", "csv,mlflow", "--logger", "tensorboard", "--logger", "csv"])
    options = TrainOptions.from_flat(data="d", **given_options(args))
    assert options.output.logger == ("csv", "mlflow", "tensorboard")
    assert (
        given_options(_parser().parse_args([])) == {} and TrainOptions.from_flat(data="d").output.logger == ()
    )
    path = tmp_path / "config.yaml"
    path.write_text(options.to_yaml(), encoding="utf-8")
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["output"]["logger"] == [
        "csv",
        "mlflow",
        "tensorboard",
    ]
    assert TrainOptions.from_yaml(path) == options
    with pytest.raises(ConfigError) as caught:
        TrainOptions.from_flat(data="d", logger="csv,wandb")
    assert str(caught.value) == "--logger 'wandb' is not one of: csv, tensorboard, mlflow"
