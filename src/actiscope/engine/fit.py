"""Training: a dataset in, a run directory with a deployable model out.

Everything a user can get wrong is checked before the first batch: model name, weights, dataset,
output folder, resume target. Then Lightning runs the loop. What comes after training (the ONNX export
for `predict`) is the workflow layer's (workflows.train).
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from actiscope.data.datamodule import ActionDataModule, balanced_class_weights
from actiscope.data.exclude import read_exclusions, without
from actiscope.data.formats import load_dataset
from actiscope.data.split import SplitManifest, make_split
from actiscope.engine.callbacks import (
    AskToContinue,
    EpochLines,
    History,
    MovingAverage,
    RNGState,
    SaveOnInterrupt,
)
from actiscope.engine.checkpoint_io import AtomicCheckpointIO
from actiscope.engine.module import ActionClassifier, NonFiniteLossError, progressive_size
from actiscope.engine.tracking import experiment_loggers
from actiscope.errors import ActiscopeError, DataError
from actiscope.files import atomic_write_text
from actiscope.hardware import PrecisionChoice, choose_precision, default_probe_cache
from actiscope.models.registry import ActionModel, create_model, example_input, get_entry
from actiscope.models.weights import HUB_NAMES, load_weights, read_state_dict, weights_provenance
from actiscope.options import ConfigError, TrainOptions
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
    loggers: list[Logger] = field(default_factory=list)  # --logger's, for what comes after training


def run_name(options: TrainOptions) -> str:
    """The run's folder name: --name, else the model and the time. A distributed run resolves it once,
    where it starts (the CLI), and passes it on as --name: Lightning starts the other ranks by running
    the same command line again, and they must find the run that rank 0 made."""
    return (
        options.output.name
        or f"{options.model.architecture.replace('/', '-')}-{datetime.now():%Y%m%d-%H%M%S}"
    )


def train(
    options: TrainOptions,
    *,
    resume: str | Path | None = None,
    announce: Sequence[str] = (),
    callbacks: Sequence[L.Callback] = (),
) -> RunResult:
    """Train `options` (or continue the run at `resume`) and write its run directory. `announce`: lines
    (the recipe chosen) logged once everything the user gave has been checked. `callbacks`: added to the
    trainer's own (a search's pruning callback)."""
    distributed = options.trainer.devices * options.trainer.num_nodes > 1
    if distributed and resume is None and not options.output.name:
        raise ConfigError(
            "a run on several devices needs --name: each process finds the run by it (the CLI sets one)"
        )
    # A DDP rank > 0 (the rank Lightning read from its launcher): rank 0 already prepared the run.
    worker = distributed and getattr(rank_zero_only, "rank", 0) != 0  # set by Lightning, undeclared
    if options.optim.mode == "linear" and (options.optim.mixup or options.optim.cutmix):
        raise ConfigError(
            "--mixup and --cutmix blend input pixels; --mode linear trains on cached features: "
            "drop them, or use --mode finetune"
        )
    if options.optim.mode == "linear" and options.optim.progressive:
        raise ConfigError(
            "--progressive resizes input images; --mode linear trains on cached features: drop it, or use "
            "--mode finetune"
        )
    # Everything the user gave is checked before anything is written: model name, weights file,
    # dataset, and that the weights fit the model.
    entry = get_entry(options.model.architecture)
    if options.model.weights not in ("none", *HUB_NAMES):
        read_state_dict(Path(options.model.weights).expanduser())
    run: RunDir | None
    if resume is not None:
        run = _resume_dir(Path(resume))
        manifest = SplitManifest.load(run.split)
    elif worker:
        run = RunDir(Path(options.output.out).expanduser() / run_name(options))
        manifest = SplitManifest.load(run.split)
    else:
        run = None
        manifest = split_manifest(options)
        if len(manifest.classes) < 2:
            raise DataError(
                f"{options.data.path}: found {len(manifest.classes)} class(es); training needs at least two"
            )
    data_config = replace(
        entry.data_config,
        image_size=options.model.image_size or entry.data_config.image_size,
        frames=options.model.frames or entry.data_config.frames,
    )
    if manifest.kind != entry.kind:
        raise DataError(
            f"{options.data.path} holds {manifest.kind}s and {options.model.architecture} is a model for {entry.kind}s; "
            f"choose one from `actiscope models --kind {manifest.kind}`"
        )
    options, dropped = fit_progressive(options)
    for line in [*announce, *([dropped] if dropped else [])]:
        log.info(line)
    L.seed_everything(options.trainer.seed, workers=True, verbose=False)  # before the model's initialisation
    module = _module(options, manifest, data_config.image_size, data_config.frames)
    if entry.kind == "image" and (why := _input_refusal(module.model, data_config.image_size)):
        raise ConfigError(
            f"--image-size {data_config.image_size}: {why}; give --image-size {entry.data_config.image_size}"
        )
    if resume is None:
        module.weights_provenance = weights_provenance(load_weights(module.model, options.model.weights))
    if run is None:
        run = _new_run_dir(options)
        manifest.save(run.split)
    datamodule = ActionDataModule(
        manifest,
        data_config,
        batch_size=options.optim.batch_size,
        workers=options.data.workers,
        augment=options.data.augment,
        balance=options.data.balance,
        crop_margin=options.data.crop_margin if options.data.crop_person else None,
        use_cache=options.data.cache,
        seed=options.trainer.seed,
        sampling=options.data.sampling,
    )
    return _fit(options, run, module, datamodule, manifest, resume=resume is not None, callbacks=callbacks)


def _module(
    options: TrainOptions, manifest: SplitManifest, image_size: int, frames: int | None = None
) -> ActionClassifier:
    class_weights = (
        balanced_class_weights(manifest.counts()["train"]) if options.data.balance == "weights" else None
    )
    optim, limit = options.optim, options.trainer.time_limit
    return ActionClassifier(
        replace(options.model, image_size=image_size, frames=frames),  # the sizes resolved for the model
        optim,
        manifest.classes,
        class_weights=class_weights,
        channels_last=options.trainer.channels_last,
        time_budget_s=limit * 60 if limit else None,
        freeze_norm=optim.mode == "finetune" and optim.batch_size < SMALL_BATCH,
    )


def fit_progressive(options: TrainOptions) -> tuple[TrainOptions, str | None]:
    """`options` with --progressive checked against the network: it needs images and a network that takes
    smaller inputs than its own size (a ViT, say, does not; one forward pass at the smallest size the
    schedule uses tells). Where it cannot, a recipe's progressive resizing is dropped (returned with the
    line that says so) and a user's own is one ConfigError, before anything is written."""
    start, name = options.optim.progressive, options.model.architecture
    if not start:
        return options, None
    entry = get_entry(name)
    why = None
    if entry.kind != "image":
        why = f"{name} is a model for clips"
    else:
        size = options.model.image_size or entry.data_config.image_size
        smallest = progressive_size(size, start, 0.0)
        why = _input_refusal(create_model(name, 2, image_size=size), smallest)
    if why is None:
        return options, None
    if "progressive" not in options.from_recipe:
        raise ConfigError(f"--progressive {start} resizes training images, and {why}: drop --progressive")
    return options.override(progressive=0.0), f"recipe: no progressive resizing ({why})"


def _input_refusal(network: ActionModel, size: int) -> str | None:
    """Why the image `network` cannot take `size` px inputs (a ViT takes only the size it was built for),
    from one forward pass; None where it can."""
    try:
        with torch.no_grad():
            network.eval()(torch.zeros(1, 3, size, size))
    except (RuntimeError, AssertionError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"{network.architecture} does not take {size} px inputs ({detail})"
    finally:
        network.train()
    return None


def _fit(
    options: TrainOptions,
    run: RunDir,
    module: ActionClassifier,
    datamodule: ActionDataModule,
    manifest: SplitManifest,
    *,
    resume: bool,
    callbacks: Sequence[L.Callback] = (),
) -> RunResult:
    choice = _precision(options, module)
    log.info(choice.line())
    used = choice.precision  # what the backbone ran in (linear mode: the feature pass)
    if options.optim.mode == "finetune" and options.optim.head_epochs and not resume:
        began = time.monotonic()
        _warm_up_head(module, datamodule, options, choice.precision)
        options = _less_time(options, module, time.monotonic() - began)  # the warm-up is part of the budget
    if options.optim.mode == "linear":
        _precompute_features(module, datamodule, choice.precision, options.optim.views)
        choice = PrecisionChoice("32-true", "the head trains on cached features", automatic=False)
    last = run.last_checkpoint
    # An automatic bf16 choice may still meet a non-finite loss: then the run goes back to the last
    # whole epoch (or the start) and goes on in fp32. An explicit --precision bf16 stops with the error.
    initial = copy.deepcopy(module.state_dict()) if choice.automatic and choice.bf16 else None
    started = time.monotonic()
    L.seed_everything(options.trainer.seed, workers=True, verbose=False)
    try:
        trainer, checkpoint, history = _run_fit(
            options, run, module, datamodule, choice.precision, resume=resume, callbacks=callbacks
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
        retry = _less_time(options, module, lost_s)
        fallback = {"precision_fallback": f"bf16 -> fp32 after a non-finite loss at {exc.where}"}
        used = "32-true"
        trainer, checkpoint, history = _run_fit(
            retry, run, module, datamodule, used, resume=restart, callbacks=callbacks
        )
    else:
        fallback = {}
    best = checkpoint.best_model_path or str(last)
    results = (  # no test split (--test 0): nothing to test, rather than metrics of no images
        trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
        if manifest.samples("test")
        else []
    )
    metrics: dict[str, Any] = {k: round(float(v), 4) for k, v in (results[0] if results else {}).items()}
    scored = [r for r in history.rows if r.get("val_acc") is not None]
    top = max(scored, key=lambda r: r["val_acc"]) if scored else {}
    metrics |= {
        "best_epoch": top.get("epoch"),
        "best_val_acc": round(top["val_acc"], 4) if top else None,
        "epochs_trained": trainer.current_epoch,
    }
    metrics |= {"precision": used, **fallback}
    package = None
    if trainer.is_global_zero:
        save_package(
            module.model,
            run.model,
            class_names=manifest.classes,
            metrics=metrics,
            weights=module.weights_provenance,
            person_crop=datamodule.person_crop,
        )
        package = run.model
    return RunResult(run.path, metrics, trainer.current_epoch, package, trainer.loggers)


def _less_time(options: TrainOptions, module: ActionClassifier, spent_s: float) -> TrainOptions:
    """`options` with `spent_s` fewer seconds of --time-limit left (for the trainer and the schedule)."""
    if not options.trainer.time_limit:
        return options
    minutes = max(0.1, options.trainer.time_limit - spent_s / 60)
    module.time_budget_s = minutes * 60
    return options.override(time_limit=minutes)


def _run_fit(
    options: TrainOptions,
    run: RunDir,
    module: ActionClassifier,
    datamodule: ActionDataModule,
    precision: str,
    *,
    resume: bool,
    callbacks: Sequence[L.Callback] = (),
) -> tuple[L.Trainer, ModelCheckpoint, History]:
    trainer, checkpoint, history = _trainer(options, run, precision, callbacks)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(run.last_checkpoint) if resume else None)
    except SystemExit:
        # Lightning exits after Ctrl-C or SIGTERM once callbacks (SaveOnInterrupt) have run.
        raise TrainingInterrupted(
            f"interrupted at epoch {trainer.current_epoch + 1}; the run is saved: continue with "
            f"`actiscope train --resume {run.path}`"
        ) from None
    return trainer, checkpoint, history


def _precision(options: TrainOptions, module: ActionClassifier) -> PrecisionChoice:
    """--precision resolved for this architecture, probed on a batch of the run's input shape."""
    example = example_input(module.model.data_config, min(options.optim.batch_size, 32))
    return choose_precision(
        options.trainer.precision,
        options.trainer.accelerator,
        model=module.model,
        example=example,
        training=options.optim.mode != "linear",
        cache=default_probe_cache(),
    )


def _new_run_dir(options: TrainOptions) -> RunDir:
    run = RunDir(Path(options.output.out).expanduser() / run_name(options))
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
    atomic_write_text(run.config, options.to_yaml())
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


def resume_config(run_dir: Path, **overrides: Any) -> TrainOptions:
    """The options a run was started with (its config.yaml, old flat ones too), with e.g. a larger epoch
    count (flat keys; None: unchanged)."""
    options = TrainOptions.from_yaml(_resume_dir(run_dir).config)
    return options.override(**{k: v for k, v in overrides.items() if v is not None})


def split_manifest(options: TrainOptions) -> SplitManifest:
    """The run's split: --split's file, else a new one of DATA (less --exclude's files)."""
    if options.data.split:
        return SplitManifest.load(options.data.split)
    dataset = load_dataset(options.data.path, options.data.format)
    if options.data.exclude:
        dataset = without(dataset, read_exclusions(options.data.exclude))
        log.info(dataset.notes[-1])
    return make_split(dataset, val=options.data.val, test=options.data.test, seed=options.trainer.seed)


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
    log.info(
        "features: %d train rows (%d per image), %d val, %d test in %.1f s",
        rows["train"],
        views,
        rows["val"],
        rows["test"],
        time.perf_counter() - started,
    )


def _warm_up_head(
    module: ActionClassifier, datamodule: ActionDataModule, options: TrainOptions, precision: str
) -> None:
    """Fine-tuning's head-only epochs, on the frozen backbone's features computed once (with `views` as
    in linear mode) instead of on images: all of them cost one forward pass, and the backbone then starts
    training under a head that already fits. A plain loop, as it is seconds of work on one tensor with
    nothing to checkpoint or log per step (a Lightning Trainer would cost more to set up than this)."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    started = time.perf_counter()
    features = datamodule.features(_extractor(module, precision), ("train", "val"), views=options.optim.views)
    x, y = (t.clone() for t in features["train"].tensors)  # out of inference mode: autograd may save them
    model = module.model
    optimizer = torch.optim.AdamW(
        model.head.parameters(), lr=options.optim.lr, weight_decay=options.optim.weight_decay
    )
    batches = math.ceil(len(x) / options.optim.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, options.optim.head_epochs * batches)
    generator = torch.Generator().manual_seed(options.trainer.seed)
    model.drop.train()
    for _ in range(options.optim.head_epochs):
        for batch in torch.randperm(len(x), generator=generator).split(options.optim.batch_size):
            loss = F.cross_entropy(
                model.forward_head(x[batch]),
                y[batch],
                weight=module.class_weight,
                label_smoothing=options.optim.label_smoothing,
            )
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
    log.info(
        "head warm-up: %d epochs on the features of %d train images (%d views) in %.1f s; val accuracy %.4f",
        options.optim.head_epochs,
        len(datamodule.datasets["train"]),
        options.optim.views,
        time.perf_counter() - started,
        val_acc,
    )


def _trainer(
    options: TrainOptions, run: RunDir, precision: str, extra: Sequence[L.Callback] = ()
) -> tuple[L.Trainer, ModelCheckpoint, History]:
    best, last = run.best_checkpoint, run.last_checkpoint
    checkpoint = ModelCheckpoint(
        dirpath=best.parent,
        filename=best.stem,
        monitor="val_acc",
        mode="max",
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    # Lightning's save_last only writes when a new best is saved; resuming needs every epoch's state.
    latest = ModelCheckpoint(dirpath=last.parent, filename=last.stem, enable_version_counter=False)
    history = History(run)
    bar = sys.stderr.isatty()  # Lightning's bar on a terminal; elsewhere (a log file) a line per epoch
    lines = [] if bar else [EpochLines(history, options.model.architecture)]
    # --ema before SaveOnInterrupt: an interrupt in validation swaps the average out before last.ckpt is saved
    average = [MovingAverage(options.optim.ema)] if options.optim.ema else []
    callbacks: list[L.Callback] = [
        checkpoint,
        latest,
        history,
        *lines,
        RNGState(),
        *average,
        SaveOnInterrupt(last),
    ]
    if options.trainer.early_stopping:
        callbacks.append(
            EarlyStopping(monitor="val_acc", mode="max", patience=options.trainer.early_stopping)
        )
    if options.trainer.ask:
        callbacks.append(AskToContinue(options.trainer.ask))
    callbacks += extra
    distributed = options.trainer.devices * options.trainer.num_nodes > 1
    trainer = L.Trainer(
        max_epochs=options.optim.epochs,
        max_time=timedelta(minutes=options.trainer.time_limit) if options.trainer.time_limit else None,
        accelerator=options.trainer.accelerator,
        devices=options.trainer.devices,
        num_nodes=options.trainer.num_nodes,
        strategy="ddp" if distributed else "auto",
        precision=precision,  # type: ignore[arg-type]  # a str of _PRECISION_INPUT, checked by hardware.choose_precision
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],  # checkpoints written atomically, loaded weights-only
        logger=experiment_loggers(options, run) or False,
        default_root_dir=run.path,
        enable_progress_bar=bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
    )
    return trainer, checkpoint, history
