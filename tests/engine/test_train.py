from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from actiscope.engine.fit import fit_progressive, resume_config, run_name, train
from actiscope.errors import ActiscopeError
from actiscope.models.registry import create_model
from actiscope.options import ConfigError, ModelOptions, OptimOptions, TrainOptions
from actiscope.package import load_package

TINY = {
    "model": "simple-cnn",
    "image_size": 32,
    "batch_size": 8,
    "lr": 3e-3,
    "workers": 0,
    "augment": "light",
    "export": "none",
}


def _history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_train_writes_the_whole_run_directory(colour_data: Path, tmp_path: Path) -> None:
    result = train(
        TrainOptions.from_flat(data=str(colour_data), epochs=3, out=str(tmp_path), name="r", **TINY)
    )
    run = tmp_path / "r"
    assert result.run_dir == run
    for name in (
        "config.yaml",
        "split.json",
        "history.csv",
        "curves.png",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "model/model.safetensors",
        "model/model.json",
    ):
        assert (run / name).is_file(), name
    rows = _history(run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert all(float(r["train_images_per_s"]) > 0 and r["val_acc"] for r in rows)
    assert Image.open(run / "curves.png").size == (1000, 400)

    # The model learned, and it is judged on test images it never trained on.
    split = json.loads((run / "split.json").read_text())
    train_files = {e["path"] for e in split["entries"] if e["split"] == "train"}
    test_files = {e["path"] for e in split["entries"] if e["split"] == "test"}
    assert test_files and not train_files & test_files
    assert result.metrics["test_acc"] >= 0.9

    model, meta = load_package(run)
    assert meta.class_names == ["blue", "green", "red"] and meta.image_size == 32
    assert meta.metrics["test_acc"] == result.metrics["test_acc"]
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_resume_continues_from_the_last_epoch(colour_data: Path, tmp_path: Path) -> None:
    train(TrainOptions.from_flat(data=str(colour_data), epochs=1, out=str(tmp_path), name="r", **TINY))
    first_split = (tmp_path / "r" / "split.json").read_text()
    config = resume_config(tmp_path / "r", epochs=3)
    result = train(config, resume=tmp_path / "r")
    assert result.epochs == 3
    assert [r["epoch"] for r in _history(tmp_path / "r")] == ["1", "2", "3"]
    assert (tmp_path / "r" / "split.json").read_text() == first_split  # same test images forever
    checkpoint = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 2 and checkpoint["optimizer_states"] and checkpoint["lr_schedulers"]
    assert any("RNGState" in key for key in checkpoint["callbacks"])


# The code as the previous turn left it (its last commit): its runs have a flat config.yaml and
# checkpoints whose module took flat keyword arguments.
TURN_OLD = "e034fa5"


def test_resume_of_a_run_the_previous_turn_wrote(colour_data: Path, tmp_path: Path) -> None:
    """A run written by the turn-old code (run here from its git history) continues under this one."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    if (
        not (repo / ".git").exists()
        or subprocess.run(
            ["git", "-C", str(repo), "cat-file", "-e", TURN_OLD], capture_output=True
        ).returncode
    ):
        pytest.skip(f"needs the git history with {TURN_OLD}")
    old = tmp_path / "old-code"
    old.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", TURN_OLD, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    env = {**os.environ, "PYTHONPATH": str(old / "src")}
    argv = [
        sys.executable,
        "-c",
        "import sys; from actiscope.cli import main; sys.exit(main(sys.argv[1:]))",
        "train",
        str(colour_data),
        "--model",
        "simple-cnn",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--export",
        "none",
        "--precision",
        "32",
        "--out",
        str(tmp_path),
        "--name",
        "old",
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "old"
    assert (
        "mode: scratch" in (run / "config.yaml").read_text()
    )  # flat: written before the options were grouped

    result = train(resume_config(run, epochs=2), resume=run)
    assert result.epochs == 2
    assert [r["epoch"] for r in _history(run)] == ["1", "2"]
    model, manifest = load_package(run / "model")
    assert manifest.class_names == ["blue", "green", "red"] and model.data_config.image_size == 32


def test_linear_mode_trains_only_the_head(colour_data: Path, tmp_path: Path) -> None:
    pretrained = create_model("simple-cnn", 3)
    weights = tmp_path / "pretrained.pth"
    torch.save(pretrained.state_dict(), weights)
    result = train(
        TrainOptions.from_flat(
            data=str(colour_data),
            epochs=3,
            out=str(tmp_path),
            name="lin",
            weights=str(weights),
            mode="linear",
            **{**TINY, "lr": 0.05},
        )
    )
    model, _ = load_package(result.run_dir)
    for key, value in pretrained.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key  # BN statistics included
    assert not torch.equal(model.head.weight, pretrained.head.weight)


def test_finetune_gives_the_backbone_a_lower_learning_rate() -> None:
    from actiscope.engine.module import ActionClassifier

    optim = OptimOptions(mode="finetune", lr=1e-2, backbone_lr_mult=0.1, scheduler="none")
    module = ActionClassifier(ModelOptions(), optim, ["a", "b"], channels_last=False)
    optimizer = module.configure_optimizers()["optimizer"]
    backbone_ids = {id(p) for p in module.model.backbone.parameters()}
    for group in optimizer.param_groups:
        in_backbone = {id(p) in backbone_ids for p in group["params"]}
        assert len(in_backbone) == 1
        assert group["lr"] == pytest.approx(1e-3 if in_backbone.pop() else 1e-2)
        if all(p.ndim <= 1 for p in group["params"]):
            assert group["weight_decay"] == 0.0


def test_non_finite_loss_stops_with_a_clear_message() -> None:
    from actiscope.engine.module import ActionClassifier, NonFiniteLossError

    module = ActionClassifier(ModelOptions(), OptimOptions(), ["a", "b"], channels_last=False)
    x = torch.full((2, 3, 32, 32), float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 0, batch 4; lower --lr"):
        module.training_step((x, torch.tensor([0, 1])), 4)


def test_time_limit_stops_and_keeps_the_best_model(colour_data: Path, tmp_path: Path) -> None:
    result = train(
        TrainOptions.from_flat(
            data=str(colour_data), epochs=500, time_limit=0.05, out=str(tmp_path), name="t", **TINY
        )
    )
    assert 1 <= result.epochs < 500
    assert load_package(result.run_dir)[1].metrics["best_epoch"] is not None


def test_cosine_follows_the_time_budget_when_it_runs_out_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from actiscope.engine import module as module_py

    now = [1000.0]
    monkeypatch.setattr(module_py.time, "monotonic", lambda: now[0])
    classifier = module_py.ActionClassifier(
        ModelOptions(), OptimOptions(lr=1.0), ["a", "b"], time_budget_s=100.0, channels_last=False
    )
    monkeypatch.setattr(
        module_py.ActionClassifier, "trainer", SimpleNamespace(estimated_stepping_batches=1000, max_epochs=10)
    )
    config = classifier.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    now[0] += 50  # half the budget gone after a single step: the schedule is half-way, not 0.1% of the way
    optimizer.step()
    schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02 + 0.98 * 0.5, rel=1e-3)
    now[0] += 60  # past the budget: the floor
    optimizer.step()
    schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02)


@pytest.mark.parametrize("pixels", [{"mixup": 0.2}, {"progressive": 0.5}])
def test_pixel_options_on_cached_features_are_refused_before_anything_is_written(
    tmp_path: Path, pixels: dict[str, float]
) -> None:
    config = TrainOptions.from_flat(
        data=str(tmp_path / "nowhere"),
        mode="linear",
        weights="imagenet",
        **pixels,
        out=str(tmp_path / "runs"),
        **{k: v for k, v in TINY.items() if k != "model"},
    )
    with pytest.raises(ConfigError, match="--mode linear trains on cached features"):
        train(config)
    assert not (tmp_path / "runs").exists()


def test_a_distributed_run_is_found_by_its_name_not_the_environment(
    colour_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    config = TrainOptions.from_flat(
        data=str(colour_data), devices=2, accelerator="cpu", out=str(tmp_path), **TINY
    )
    with pytest.raises(ConfigError, match="several devices needs --name"):
        train(config)
    # A rank > 0 (as Lightning's launcher starts it) opens the run rank 0 made, by its name; it makes none.
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    with pytest.raises(ActiscopeError, match=r"ddp.split\.json"):
        train(config.override(name="ddp"))
    assert not (tmp_path / "ddp").exists()
    assert run_name(config.override(name="ddp")) == "ddp" and run_name(config).startswith("simple-cnn-")


def test_ema_validates_checkpoints_and_packages_the_average_and_resumes(
    colour_data: Path, tmp_path: Path
) -> None:
    """--ema: the best checkpoint and the package hold the moving average of the weights (not the last
    weights trained, which the checkpoint keeps beside it so that a resumed run goes on from them)."""
    train(
        TrainOptions.from_flat(data=str(colour_data), epochs=2, ema=0.9, out=str(tmp_path), name="r", **TINY)
    )
    run = tmp_path / "r"
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    average, current = best["state_dict"], best["current_model_state"]
    assert "averaging_state" in best and average.keys() == current.keys()
    weights = [k for k in average if k.endswith(".weight")]
    assert any(not torch.equal(average[k], current[k]) for k in weights)
    model, _ = load_package(run)
    packaged = model.state_dict()
    assert all(torch.equal(packaged[k.removeprefix("model.")], average[k]) for k in weights)

    result = train(resume_config(run, epochs=3), resume=run)
    assert result.epochs == 3 and [r["epoch"] for r in _history(run)] == ["1", "2", "3"]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["averaging_state"]["n_averaged"] > best["averaging_state"]["n_averaged"]


def test_progressive_is_refused_for_a_network_of_one_input_size(colour_data: Path, tmp_path: Path) -> None:
    """A ViT takes only the size it was built for: --progressive (or another --image-size) is one line
    before any run is written; so is --progressive for a clip model."""
    options = {**TINY, "model": "timm/vit_tiny_patch16_224", "image_size": 64}
    config = TrainOptions.from_flat(
        data=str(colour_data), progressive=0.5, out=str(tmp_path / "runs"), **options
    )
    with pytest.raises(ConfigError, match="timm/vit_tiny_patch16_224 does not take 32 px inputs"):
        train(config)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(
        ConfigError, match=r"--image-size 64: .* does not take 64 px .*; give --image-size 224"
    ):
        train(config.override(progressive=0.0))  # nor any size but its own
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="convlstm is a model for clips: drop --progressive"):
        fit_progressive(TrainOptions.from_flat(data="d", model="convlstm", progressive=0.5))


@pytest.mark.parametrize(
    ("model", "why"),
    [("timm/vit_tiny_patch16_224", "does not take 48 px inputs"), ("cnn-lstm", "is a model for clips")],
)
def test_the_recipes_progressive_resizing_yields_where_the_network_cannot_take_it(
    model: str, why: str, tmp_path: Path
) -> None:
    """The from-scratch recipe resizes progressively; for a ViT or a clip model it drops that, says
    so, and --print-config shows what train will run. Where the network takes it, it stays."""
    from actiscope import api

    options, notes = api.train_options(tmp_path, model=model, weights="none", time_limit=30.0)
    assert options.optim.progressive == 0.0 and "progressive 0.5" in notes[-2]
    assert notes[-1].startswith(f"recipe: no progressive resizing ({model} {why}")
    kept, _ = api.train_options(tmp_path, model="simple-cnn", weights="none", time_limit=30.0)
    assert kept.optim.progressive == 0.5 and fit_progressive(kept) == (kept, None)


def test_ema_interrupted_in_validation_saves_the_current_weights_for_the_resume(
    colour_data: Path, tmp_path: Path
) -> None:
    """SIGTERM (or Ctrl-C) while validation runs on the average: last.ckpt still holds the weights training had reached
    as the ones to go on from (not the average, swapped in at that moment)."""
    import lightning as L
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from actiscope.engine.fit import TrainingInterrupted

    class InterruptInValidation(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
            self.current = {k: v.clone() for k, v in pl_module.state_dict().items()}

        def on_validation_batch_start(self, *args: object) -> None:
            raise SIGTERMException  # as Lightning raises it on SIGTERM (Ctrl-C would leave SIGINT ignored)

    watch = InterruptInValidation()
    options = TrainOptions.from_flat(
        data=str(colour_data), epochs=2, ema=0.5, out=str(tmp_path), name="r", **TINY
    )
    with pytest.raises(TrainingInterrupted):
        train(options, callbacks=[watch])
    last = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=True)
    weights = [k for k in watch.current if k.endswith(".weight")]
    assert all(torch.equal(last["current_model_state"][k], watch.current[k]) for k in weights)
    assert any(not torch.equal(last["state_dict"][k], watch.current[k]) for k in weights)
