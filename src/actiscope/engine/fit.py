"""Training: a dataset in, a run directory with a deployable model out.

Everything a user can get wrong is checked before the first batch: model name, weights, dataset,
output folder, resume target. Then Lightning runs the loop. What comes after training (the ONNX export
for `predict`) is the workflow layer's (workflows.train).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from actiscope.config import ConfigError, TrainConfig
from actiscope.data.datamodule import ActionDataModule, balanced_class_weights
from actiscope.data.exclude import read_exclusions, without
from actiscope.data.formats import load_dataset
from actiscope.data.split import SplitManifest, make_split
from actiscope.engine.callbacks import AskToContinue, History, RNGState, SaveOnInterrupt
from actiscope.engine.module import ActionClassifier, NonFiniteLossError
from actiscope.errors import ActiscopeError, DataError
from actiscope.files import atomic_write_text
from actiscope.hardware import PrecisionChoice, choose_precision, default_probe_cache
from actiscope.models.registry import example_input, get_entry
from actiscope.models.weights import HUB_NAMES, load_weights, read_state_dict, weights_provenance
from actiscope.package import save_package
from actiscope.run import RunDir

log = logging.getLogger(__name__)
# Fine-tuning below this batch size keeps the pretrained batch-norm statistics (a batch of 8 estimates them
# too noisily); the scale and shift still train.
SMALL_BATCH = 16


class TrainingInterrupted(ActiscopeError):
    exit_code = 130


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float]
    epochs: int
    package: Path | None = None  # the package this process wrote; None on the other ranks of a DDP run


def run_name(config: TrainConfig) -> str:
    """The run's folder name: --name, else the model and the time. A distributed run resolves it once,
    where it starts (the CLI), and passes it on as --name: Lightning starts the other ranks by running
    the same command line again, and they must find the run that rank 0 made."""
    return config.name or f"{config.model.replace('/', '-')}-{datetime.now():%Y%m%d-%H%M%S}"


def train(
    config: TrainConfig, *, resume: str | Path | None = None, announce: Sequence[str] = ()
) -> RunResult:
    """Train `config` (or continue the run at `resume`) and write its run directory. `announce`: lines
    (the recipe chosen) logged once everything the user gave has been checked."""
    distributed = config.devices * config.num_nodes > 1
    if distributed and resume is None and not config.name:
        raise ConfigError(
            "a run on several devices needs --name: each process finds the run by it (the CLI sets one)"
        )
    # A DDP rank > 0 (the rank Lightning read from its launcher): rank 0 already prepared the run.
    worker = distributed and rank_zero_only.rank != 0
    if config.mode == "linear" and (config.mixup or config.cutmix):
        raise ConfigError("--mixup and --cutmix blend input pixels; --mode linear trains on cached features: "
                          "drop them, or use --mode finetune")  # fmt: skip
    # Everything the user gave is checked before anything is written: model name, weights file,
    # dataset, and that the weights fit the model.
    entry = get_entry(config.model)
    if config.weights not in ("none", *HUB_NAMES):
        read_state_dict(Path(config.weights).expanduser())
    run: RunDir | None
    if resume is not None:
        run = _resume_dir(Path(resume))
        manifest = SplitManifest.load(run.split)
    elif worker:
        run = RunDir(Path(config.out).expanduser() / run_name(config))
        manifest = SplitManifest.load(run.split)
    else:
        run = None
        manifest = split_manifest(config)
        if len(manifest.classes) < 2:
            raise DataError(
                f"{config.data}: found {len(manifest.classes)} class(es); training needs at least two"
            )
    data_config = replace(
        entry.data_config,
        image_size=config.image_size or entry.data_config.image_size,
        frames=config.frames or entry.data_config.frames,
    )
    if manifest.kind != entry.kind:
        raise DataError(f"{config.data} holds {manifest.kind}s and {config.model} is a model for {entry.kind}s; "
                        f"choose one from `actiscope models --kind {manifest.kind}`")  # fmt: skip
    for line in announce:
        log.info(line)
    L.seed_everything(config.seed, workers=True, verbose=False)  # before the model's initialisation
    module = _module(config, manifest, data_config.image_size, data_config.frames)
    if resume is None:
        module.weights_provenance = weights_provenance(load_weights(module.model, config.weights))
    if run is None:
        run = _new_run_dir(config)
        manifest.save(run.split)
    datamodule = ActionDataModule(
        manifest, data_config, batch_size=config.batch_size, workers=config.workers, augment=config.augment,
        balance=config.balance, crop_margin=config.crop_margin if config.crop_person else None,
        use_cache=config.cache, seed=config.seed, sampling=config.sampling,
    )  # fmt: skip
    return _fit(config, run, module, datamodule, manifest, resume=resume is not None)


def _module(
    config: TrainConfig, manifest: SplitManifest, image_size: int, frames: int | None = None
) -> ActionClassifier:
    class_weights = (
        balanced_class_weights(manifest.counts()["train"]) if config.balance == "weights" else None
    )
    return ActionClassifier(
        config.model, manifest.classes, image_size=image_size, frames=frames, drop_rate=config.drop_rate,
        mode=config.mode, optimizer=config.optimizer, lr=config.lr, weight_decay=config.weight_decay,
        scheduler=config.scheduler, warmup_epochs=config.warmup_epochs, backbone_lr_mult=config.backbone_lr_mult,
        label_smoothing=config.label_smoothing, class_weights=class_weights,
        mixup=config.mixup, cutmix=config.cutmix, channels_last=config.channels_last,
        time_budget_s=config.time_limit * 60 if config.time_limit else None,
        freeze_norm=config.mode == "finetune" and config.batch_size < SMALL_BATCH, freeze=config.freeze,
    )  # fmt: skip


def _fit(
    config: TrainConfig,
    run: RunDir,
    module: ActionClassifier,
    datamodule: ActionDataModule,
    manifest: SplitManifest,
    *,
    resume: bool,
) -> RunResult:
    choice = _precision(config, module)
    log.info(choice.line())
    used = choice.precision  # what the backbone ran in (linear mode: the feature pass)
    if config.mode == "finetune" and config.head_epochs and not resume:
        began = time.monotonic()
        _warm_up_head(module, datamodule, config, choice.precision)
        config = _less_time(config, module, time.monotonic() - began)  # the warm-up is part of the budget
    if config.mode == "linear":
        _precompute_features(module, datamodule, choice.precision, config.views)
        choice = PrecisionChoice("32-true", "the head trains on cached features", automatic=False)
    last = run.last_checkpoint
    # An automatic bf16 choice may still meet a non-finite loss: then the run goes back to the last
    # whole epoch (or the start) and goes on in fp32. An explicit --precision bf16 stops with the error.
    initial = copy.deepcopy(module.state_dict()) if choice.automatic and choice.bf16 else None
    started = time.monotonic()
    L.seed_everything(config.seed, workers=True, verbose=False)
    try:
        trainer, checkpoint, history = _run_fit(
            config, run, module, datamodule, choice.precision, resume=resume
        )
    except NonFiniteLossError as exc:
        if initial is None:
            raise
        restart = last.is_file()
        back = "the last whole epoch" if restart else "the start"
        log.warning(
            "non-finite loss at %s under automatic bf16: back to %s, continuing in fp32", exc.where, back
        )
        if not restart:
            module.load_state_dict(initial)
        # The budget left: a resumed trainer restores the time up to its checkpoint, not what came after.
        lost_s = time.time() - last.stat().st_mtime if restart else time.monotonic() - started
        retry = _less_time(config, module, lost_s)
        fallback = {"precision_fallback": f"bf16 -> fp32 after a non-finite loss at {exc.where}"}
        used = "32-true"
        trainer, checkpoint, history = _run_fit(retry, run, module, datamodule, used, resume=restart)
    else:
        fallback = {}
    best = checkpoint.best_model_path or str(last)
    results = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    metrics = {k: round(float(v), 4) for k, v in (results[0] if results else {}).items()}
    scored = [r for r in history.rows if r.get("val_acc") is not None]
    best_epoch = max(scored, key=lambda r: r["val_acc"])["epoch"] if scored else None
    metrics |= {"best_epoch": best_epoch, "epochs_trained": trainer.current_epoch}
    metrics |= {"precision": used, **fallback}
    package = None
    if trainer.is_global_zero:
        save_package(module.model, run.model, class_names=manifest.classes, metrics=metrics,
                     weights=module.weights_provenance, person_crop=datamodule.person_crop)  # fmt: skip
        package = run.model
    return RunResult(run.path, metrics, trainer.current_epoch, package)


def _less_time(config: TrainConfig, module: ActionClassifier, spent_s: float) -> TrainConfig:
    """`config` with `spent_s` fewer seconds of --time-limit left (for the trainer and the schedule)."""
    if not config.time_limit:
        return config
    left = replace(config, time_limit=max(0.1, config.time_limit - spent_s / 60))
    module.hparams.time_budget_s = left.time_limit * 60
    return left


def _run_fit(
    config: TrainConfig,
    run: RunDir,
    module: ActionClassifier,
    datamodule: ActionDataModule,
    precision: str,
    *,
    resume: bool,
) -> tuple[L.Trainer, ModelCheckpoint, History]:
    trainer, checkpoint, history = _trainer(config, run, precision)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(run.last_checkpoint) if resume else None)
    except SystemExit:
        # Lightning exits after Ctrl-C or SIGTERM once callbacks (SaveOnInterrupt) have run.
        raise TrainingInterrupted(
            f"interrupted at epoch {trainer.current_epoch + 1}; the run is saved: continue with "
            f"`actiscope train --resume {run.path}`"
        ) from None
    return trainer, checkpoint, history


def _precision(config: TrainConfig, module: ActionClassifier) -> PrecisionChoice:
    """--precision resolved for this architecture, probed on a batch of the run's input shape."""
    example = example_input(module.model.data_config, min(config.batch_size, 32))
    return choose_precision(
        config.precision,
        config.accelerator,
        model=module.model,
        example=example,
        training=config.mode != "linear",
        cache=default_probe_cache(),
    )


def _new_run_dir(config: TrainConfig) -> RunDir:
    run = RunDir(Path(config.out).expanduser() / run_name(config))
    if run.path.exists() and any(run.path.iterdir()):
        raise ConfigError(
            f"{run.path} already holds a run; choose another --name, or continue it with --resume {run.path}"
        )
    try:
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        probe = run.path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot write the run to {run.path} ({exc.strerror or exc}); choose a writable --out"
        ) from None
    atomic_write_text(run.config, config.to_yaml())
    return run


def _resume_dir(path: Path) -> RunDir:
    run = RunDir(path)
    if not run.has_config():
        raise ConfigError(
            f"--resume {path}: no run there (no {run.config.name}); give a run directory made by `actiscope train`"
        )
    if not run.has_checkpoint():
        raise ConfigError(
            f"--resume {path}: the run has no {run.last_checkpoint.relative_to(path)} to continue from"
        )
    return run


def resume_config(run_dir: Path, **overrides: Any) -> TrainConfig:
    """The configuration a run was started with, with e.g. a larger epoch count."""
    config = TrainConfig.from_yaml(_resume_dir(run_dir).config)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def split_manifest(config: TrainConfig) -> SplitManifest:
    """The run's split: --split's file, else a new one of DATA (less --exclude's files)."""
    if config.split:
        return SplitManifest.load(config.split)
    dataset = load_dataset(config.data, config.format)
    if config.exclude:
        dataset = without(dataset, read_exclusions(config.exclude))
        log.info(dataset.notes[-1])
    return make_split(dataset, val=config.val, test=config.test, seed=config.seed)


def _extractor(module: ActionClassifier, precision: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The frozen backbone as a function: a batch of pixels -> pooled features."""
    backbone = module.model.eval()
    bf16 = precision.startswith("bf16")

    def extract(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            return backbone.forward_features(x)

    return extract


def _precompute_features(
    module: ActionClassifier, datamodule: ActionDataModule, precision: str, views: int
) -> None:
    datamodule.prepare_data()
    datamodule.setup("fit")
    started = time.perf_counter()
    rows = datamodule.precompute_features(_extractor(module, precision), views=views)
    log.info("features: %d train rows (%d per image), %d val, %d test in %.1f s", rows["train"], views,
             rows["val"], rows["test"], time.perf_counter() - started)  # fmt: skip


def _warm_up_head(
    module: ActionClassifier, datamodule: ActionDataModule, config: TrainConfig, precision: str
) -> None:
    """Fine-tuning's head-only epochs, on the frozen backbone's features computed once (with `views` as
    in linear mode) instead of on images: all of them cost one forward pass, and the backbone then starts
    training under a head that already fits. A plain loop, as it is seconds of work on one tensor with
    nothing to checkpoint or log per step (a Lightning Trainer would cost more to set up than this)."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    started = time.perf_counter()
    features = datamodule.features(_extractor(module, precision), ("train", "val"), views=config.views)
    x, y = (t.clone() for t in features["train"].tensors)  # out of inference mode: autograd may save them
    model = module.model
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batches = math.ceil(len(x) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.head_epochs * batches)
    generator = torch.Generator().manual_seed(config.seed)
    model.drop.train()
    for _ in range(config.head_epochs):
        for batch in torch.randperm(len(x), generator=generator).split(config.batch_size):
            loss = F.cross_entropy(model.forward_head(x[batch]), y[batch], weight=module.class_weight,
                                   label_smoothing=config.label_smoothing)  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    val_x, val_y = features["val"].tensors
    with torch.no_grad():
        val_acc = (
            (model.forward_head(val_x).argmax(1) == val_y).float().mean().item()
            if len(val_y)
            else float("nan")
        )
    module.train()  # Lightning trains the module in the mode it finds it in
    log.info("head warm-up: %d epochs on the features of %d train images (%d views) in %.1f s; val accuracy %.4f",
             config.head_epochs, len(datamodule.datasets["train"]), config.views, time.perf_counter() - started,
             val_acc)  # fmt: skip


def _trainer(config: TrainConfig, run: RunDir, precision: str) -> tuple[L.Trainer, ModelCheckpoint, History]:
    best, last = run.best_checkpoint, run.last_checkpoint
    checkpoint = ModelCheckpoint(
        dirpath=best.parent, filename=best.stem, monitor="val_acc", mode="max",
        auto_insert_metric_name=False, enable_version_counter=False,
    )  # fmt: skip
    # Lightning's save_last only writes when a new best is saved; resuming needs every epoch's state.
    latest = ModelCheckpoint(dirpath=last.parent, filename=last.stem, enable_version_counter=False)
    history = History(run)
    callbacks: list[L.Callback] = [checkpoint, latest, history, RNGState(), SaveOnInterrupt(last)]
    if config.early_stopping:
        callbacks.append(EarlyStopping(monitor="val_acc", mode="max", patience=config.early_stopping))
    if config.ask:
        callbacks.append(AskToContinue(config.ask))
    distributed = config.devices * config.num_nodes > 1
    trainer = L.Trainer(
        max_epochs=config.epochs,
        max_time={"minutes": config.time_limit} if config.time_limit else None,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy="ddp" if distributed else "auto",
        precision=precision,  # type: ignore[arg-type]
        callbacks=callbacks,
        logger=False,
        default_root_dir=run.path,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
    )
    return trainer, checkpoint, history
