"""Small callbacks for what Lightning does not already do (it has checkpointing, early stopping and a
progress bar for terminals)."""

from __future__ import annotations

import csv
import io
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, Timer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from actiscope.engine.curves import plot_curves
from actiscope.files import atomic_write_text
from actiscope.run import RunDir

log = logging.getLogger(__name__)
HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_f1",
    "lr",
    "seconds",
    "train_seconds",
    "train_images_per_s",
)
# what History measures that the LightningModule does not log: it sends these to the experiment loggers
TRACKED = ("lr", "seconds", "train_images_per_s")


class History(L.Callback):
    """history.csv (one row per epoch) and curves.png, rewritten after every epoch so a dashboard can
    follow a run live. Its rows travel in the checkpoint, so a resumed run keeps its history."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.rows: list[dict[str, Any]] = []
        self._epoch_start = self._train_end = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._train_end = 0.0
        self._images = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._images += len(batch[1])

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and not self._train_end:
            self._train_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        now = time.perf_counter()
        train_seconds = (self._train_end or now) - self._epoch_start
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row: dict[str, Any] = {
            "epoch": trainer.current_epoch + 1,
            "train_loss": metrics.get("train_loss_epoch", metrics.get("train_loss")),
            "train_acc": metrics.get("train_acc"),
            "val_loss": metrics.get("val_loss"),
            "val_acc": metrics.get("val_acc"),
            "val_f1": metrics.get("val_f1"),
            "lr": trainer.optimizers[0].param_groups[-1]["lr"] if trainer.optimizers else None,
            "seconds": round(now - self._epoch_start, 2),
            "train_seconds": round(train_seconds, 2),
            "train_images_per_s": round(self._images * trainer.world_size / max(train_seconds, 1e-9), 1),
        }
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        self.write()
        if trainer.loggers:  # the experiment loggers get what only this callback measures
            for key in TRACKED:
                if row[key] is not None:
                    pl_module.log(key, float(row[key]), rank_zero_only=True)

    def write(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in self.rows)
        atomic_write_text(self.run.history, buffer.getvalue())
        plot_curves(self.rows, self.run.curves)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))


class EpochLines(L.Callback):
    """Where no progress bar can be drawn (no terminal: nohup, CI, a container, a notebook), one plain line
    per epoch through the logger, from History's row (so it must come after History in the callbacks):

        resnet18 epoch 3/10: train loss 1.234 acc 0.456 | val loss 1.301 acc 0.432 F1 0.401 | lr 1.2e-03 |
        41.2 s, 123 images/s | best val acc 0.432 (epoch 3)

    all on one line. `name` (the architecture) tells the runs of a comparison apart."""

    def __init__(self, history: History, name: str) -> None:
        self.history, self.name = history, name

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.history.rows:
            log.info(epoch_line(self.name, self.history.rows, trainer.max_epochs, _minutes_left(trainer)))


def epoch_line(
    name: str, rows: list[dict[str, float]], total: int | None, minutes_left: float | None = None
) -> str:
    """The line for the last of `rows` (History's rows); `minutes_left` of a --time-limit."""
    row = rows[-1]

    def show(key: str, spec: str = ".4f") -> str:
        value = row.get(key)
        return "-" if value is None or value != value else format(value, spec)

    epochs = f"{row['epoch']}/{total}" if total and total > 0 else f"{row['epoch']}"
    clock = f" ({minutes_left:.1f} min left)" if minutes_left is not None else ""
    scored = [r for r in rows if r.get("val_acc") is not None]
    best = max(scored, key=lambda r: r["val_acc"]) if scored else None
    return (
        f"{name} epoch {epochs}{clock}: train loss {show('train_loss')} acc {show('train_acc')} | "
        f"val loss {show('val_loss')} acc {show('val_acc')} F1 {show('val_f1')} | lr {show('lr', '.2e')} | "
        f"{show('seconds', '.1f')} s, {show('train_images_per_s', '.0f')} images/s | "
        + (f"best val acc {best['val_acc']:.4f} (epoch {best['epoch']})" if best else "best val acc -")
    )


def _minutes_left(trainer: L.Trainer) -> float | None:
    """What is left of --time-limit (Lightning's Timer, which `max_time` adds), or None without one."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # type: ignore[attr-defined]  # Trainer.callbacks is a property the stubs miss
    left = timer.time_remaining("train") if timer is not None else None
    return None if left is None else max(0.0, left / 60)


class RNGState(L.Callback):
    """Python, NumPy and torch random state in the checkpoint: a resumed run draws what it would have."""

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        assert isinstance(np_state, tuple)  # the legacy form, the default
        return {
            "python": random.getstate(),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "torch": torch.get_rng_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        version, internal, gauss_next = state_dict["python"]
        random.setstate((version, tuple(internal), gauss_next))
        name, keys, *rest = state_dict["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        torch.set_rng_state(state_dict["torch"])


class SaveOnInterrupt(L.Callback):
    """Ctrl-C or SIGTERM (a preempted job): Lightning stops after the current batch; this saves
    last.ckpt so --resume continues from there."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt | SIGTERMException):
            trainer.save_checkpoint(self.path)
            log.info("interrupted: saved %s", self.path)


def warmed_ema(decay: float) -> Any:
    """AveragedModel's avg_fn for an exponential average whose decay warms up: min(decay, (1 + n) / (10 + n))
    after n updates (timm's ModelEmaV3 warm-up)."""

    def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        n = float(updates)
        kept = min(decay, (1 + n) / (10 + n))
        return averaged * kept + current * (1 - kept)

    return average


class MovingAverage(EMAWeightAveraging):
    """--ema: Lightning's EMAWeightAveraging (validation on the average; checkpoints hold it, with the
    current weights beside it for a resumed run), with two fixes for how runs here use it:
    - a checkpoint loaded outside fitting (`trainer.test(ckpt_path=best)`, before the package is saved)
      keeps the average it holds, where Lightning would load the current weights kept beside it;
    - an interrupt during validation, while the average is swapped in, swaps back before SaveOnInterrupt
      (after this in the callback list) writes last.ckpt, so a resumed run goes on from the right weights.
    - the decay warms up as timm's ModelEmaV3 does, min(decay, (1 + n) / (10 + n)) after n updates:
      Lightning's is fixed, so a short run's average (0.998 over a few hundred steps) would stay near the
      random initial weights.
    """

    def __init__(self, decay: float) -> None:
        super().__init__(decay=decay)
        self._kwargs["avg_fn"] = warmed_ema(decay)
        self.swapped = False

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)
        self.swapped = self._average_model is not None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_end(trainer, pl_module)
        self.swapped = False

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self.swapped:
            self._swap_models(pl_module)
            self.swapped = False

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class AskToContinue(L.Callback):
    """Every `every` epochs on a terminal: stop, go on, or set how many more epochs to run."""

    def __init__(self, every: int, stream: Any = None) -> None:
        self.every = every
        self.stream = stream if stream is not None else sys.stdin

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if (
            not self.every
            or epoch % self.every
            or epoch >= (trainer.max_epochs or 0)
            or not trainer.is_global_zero
        ):
            return
        if not (hasattr(self.stream, "isatty") and self.stream.isatty()):
            return
        sys.stderr.write(
            f"\nepoch {epoch}/{trainer.max_epochs}: Enter to go on, 's' to stop, or a number of further epochs: "
        )
        sys.stderr.flush()
        answer = self.stream.readline().strip().lower()
        if answer in ("s", "stop", "q"):
            trainer.should_stop = True
        elif answer.isdigit():
            trainer.fit_loop.max_epochs = epoch + int(answer)
            trainer.should_stop = int(answer) == 0
