"""`ActionClassifier`: the one LightningModule. Image and video differ only in data and model.

It takes the option groups that matter to it (actiscope.options: the model to build, how it learns);
every checkpoint records them as plain mappings, beside the run's config.yaml.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Literal, cast

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from timm.optim import param_groups_weight_decay
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchvision import tv_tensors
from torchvision.transforms import v2

from actiscope.errors import ActiscopeError
from actiscope.models.registry import ActionModel, create_model
from actiscope.options import ModelOptions, OptimOptions


class NonFiniteLossError(ActiscopeError):
    exit_code = 1

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where  # "epoch E, batch B"


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "adamax": torch.optim.Adamax,
    "sgd": lambda params, lr, weight_decay: torch.optim.SGD(
        params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
    ),
}


# the metrics of validation and test: (name, class, torchmetrics' average)
METRICS: tuple[tuple[str, type[Metric], Literal["micro", "macro"]], ...] = (
    ("acc", MulticlassAccuracy, "micro"),
    ("f1", MulticlassF1Score, "macro"),
)


class ActionClassifier(L.LightningModule):
    class_weight: torch.Tensor | None  # a buffer (--balance weights), registered in __init__

    def __init__(
        self,
        model: ModelOptions,
        optim: OptimOptions,
        class_names: list[str],
        *,
        class_weights: list[float] | None = None,
        channels_last: bool = True,
        time_budget_s: float | None = None,
        freeze_norm: bool = False,
    ) -> None:
        """`model` builds the network (its sizes resolved; its weights are fit's to load), `optim` is how it
        learns; `time_budget_s` (--time-limit) lets the cosine schedule follow the clock; `freeze_norm` keeps
        the pretrained batch-norm statistics (fine-tuning in small batches)."""
        super().__init__()
        # As plain mappings, so that a checkpoint holds no class of ours and loads weights-only.
        self.save_hyperparameters(
            {
                "model": asdict(model),
                "optim": asdict(optim),
                "class_names": list(class_names),
                "class_weights": class_weights,
                "channels_last": channels_last,
                "freeze_norm": freeze_norm,
            }
        )
        self.optim, self.channels_last, self.freeze_norm = optim, channels_last, freeze_norm
        self.time_budget_s = time_budget_s  # fit lowers it by what the head warm-up spent
        self.model: ActionModel = create_model(
            model.architecture,
            len(class_names),
            image_size=model.image_size,
            frames=model.frames,
            drop_rate=model.drop_rate,
        )
        self.register_buffer(
            "class_weight", torch.tensor(class_weights) if class_weights else None, persistent=False
        )
        num_classes = len(class_names)
        mixers = [m for m, alpha in ((v2.MixUp, optim.mixup), (v2.CutMix, optim.cutmix)) if alpha > 0]
        alphas = [a for a in (optim.mixup, optim.cutmix) if a > 0]
        self.mixer = (
            v2.RandomChoice(
                [m(alpha=a, num_classes=num_classes) for m, a in zip(mixers, alphas, strict=True)]
            )
            if mixers
            else None
        )
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": metric(num_classes=num_classes, average=avg)
                for stage in ("val", "test")
                for name, metric, avg in METRICS
            }
        )
        if channels_last:
            self.model = self.model.to_channels_last()
        # Where the starting weights came from (models.weights): kept in checkpoints, so a resumed run's
        # package still names them.
        self.weights_provenance: dict[str, str] = {"name": "none", "source": "none"}
        self._clock = _BudgetClock(time_budget_s)  # configure_optimizers starts it again for each fit
        self._total_steps = 1

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["weights_provenance"] = self.weights_provenance

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.weights_provenance = checkpoint.get("weights_provenance", self.weights_provenance)

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:  # cached features (linear mode): only the head runs
            return self.model.forward_head(x)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def on_train_start(self) -> None:
        # A resumed run (--resume, or the fp32 retry from last.ckpt): Lightning's Timer restores the
        # training time up to the checkpoint, and so does the clock of the schedule and of --progressive.
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)  # type: ignore[attr-defined]  # a property mypy misses
        if timer is not None:
            self._clock.start -= timer.time_elapsed("train")

    def on_train_epoch_start(self) -> None:
        frozen = self.optim.mode == "linear"
        self.model.backbone.requires_grad_(not frozen)
        if frozen:  # batch-norm statistics stay as the pretrained backbone had them
            self.model.backbone.eval()
            return
        if self.freeze_norm:  # fine-tuning in small batches: their statistics are noise
            for layer in self.model.backbone.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()
        for layer in self._frozen_prefix():  # the first layers keep their pretrained weights
            layer.requires_grad_(False).eval()

    def _frozen_prefix(self) -> list[nn.Module]:
        """The first `freeze` fraction of the backbone's layers that have weights, in the order they were
        built (for a CNN: input side first). Their backward pass is the costly one at full resolution."""
        if self.optim.mode != "finetune" or not self.optim.freeze:
            return []
        layers = [m for m in self.model.backbone.modules() if any(True for _ in m.parameters(recurse=False))]
        return layers[: round(len(layers) * self.optim.freeze)]

    # -- steps --------------------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        x, target = self.mix(self.resize(x), y)
        logits = self(x)
        loss = F.cross_entropy(
            logits, target, weight=self.class_weight, label_smoothing=self.optim.label_smoothing
        )
        if not torch.isfinite(loss):
            where = f"epoch {self.current_epoch}, batch {batch_idx}"
            raise NonFiniteLossError(
                f"the loss became {loss.item()} at {where}; lower --lr, or use --precision 32", where
            )
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(
            "train_acc",
            (logits.argmax(1) == y).float().mean(),
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
        )
        return loss

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """--progressive on a training batch of images: resized down to the size the schedule has reached
        (progressive_size); clips, cached features and full-size steps pass unchanged. The loader keeps
        making full-size crops, so the saving is the network's, the cost that dominates on a CPU."""
        if not self.optim.progressive or x.ndim != 4:
            return x
        progress = max(self.global_step / self._total_steps, self._clock())
        size = progressive_size(x.shape[-1], self.optim.progressive, progress)
        if size >= x.shape[-1]:
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """--mixup / --cutmix on a training batch: images (N, 3, S, S) or clips (N, T, 3, S, S), where
        mixup blends whole clips and cutmix pastes the same box into every frame. Returns the pixels and
        the (soft) targets; the batch unchanged without them."""
        if self.mixer is None:
            return x, y
        if x.ndim == 5:  # torchvision mixes a batch of clips when it is told they are videos
            mixed, target = self.mixer(tv_tensors.Video(x), y)
            return mixed.as_subclass(torch.Tensor), target
        return self.mixer(x, y)

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log(
            f"{stage}_loss", loss, on_epoch=True, prog_bar=stage == "val", batch_size=len(y), sync_dist=True
        )
        for name in ("acc", "f1"):
            metric = cast(Metric, self.metrics[f"{stage}_{name}"])  # the ModuleDict holds only these
            metric.update(logits.float(), y)
            self.log(f"{stage}_{name}", metric, on_epoch=True, prog_bar=name == "acc", batch_size=len(y))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    # -- optimisation -------------------------------------------------------------------------------
    def configure_optimizers(self) -> OptimizerLRScheduler:
        hp = self.optim
        self._clock = _BudgetClock(self.time_budget_s)  # the fit's clock: schedule, progressive resizing
        # the fit's step count, read once: AskToContinue may change max_epochs later, not the schedule
        try:
            self._total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        except RuntimeError:  # no trainer attached: the optimiser built alone (its groups, in a test)
            self._total_steps = 1
        backbone_lr = hp.lr * (hp.backbone_lr_mult if hp.mode == "finetune" else 1.0)
        trained: list[tuple[nn.Module, float]] = [(self.model.head, hp.lr)]
        if hp.mode != "linear":
            trained.insert(0, (self.model.backbone, backbone_lr))
        # Every parameter goes in, even those an earlier fit in this process froze (on_train_epoch_start
        # freezes them again), as timm leaves out what does not require grad: a checkpoint holds one
        # optimizer state per group, and a resumed optimizer needs the groups it was saved with.
        for module, _ in trained:
            module.requires_grad_(True)
        groups = [g | {"lr": lr} for module, lr in trained for g in _decay_groups(module, hp.weight_decay)]
        optimizer = OPTIMIZERS[hp.optimizer](groups, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return {"optimizer": optimizer}
        if hp.scheduler == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=2)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss", "interval": "epoch"},
            }
        total = self._total_steps
        schedule: torch.optim.lr_scheduler.LRScheduler
        if hp.scheduler == "onecycle":
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in groups], total_steps=total
            )
        else:  # cosine with linear warmup
            # A LambdaLR rather than timm's CosineLRScheduler, which follows the step count alone and ends
            # every group at one lr_min: this one ends each group at 2% of its own rate and, with
            # --time-limit, follows the clock when it runs out first (_BudgetClock; timm has no clock).
            per_epoch = total / max(1, self.trainer.max_epochs or 1)
            warmup = int(hp.warmup_epochs * per_epoch)
            clock = self._clock
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: _warmup_cosine(step, warmup, total, clock())
            )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """timm's parameter groups: no weight decay on biases and norm scales (decaying them only hurts).

    In the order and number that checkpoints of earlier runs hold optimizer states for: the decayed group
    first, and both groups even at --weight-decay 0 (timm, asked for 0, would merge them into one: it is
    asked for 1, and the rate is set after)."""
    groups = param_groups_weight_decay(module, weight_decay=1.0)[::-1]
    return [g | {"weight_decay": weight_decay if g["weight_decay"] else 0.0} for g in groups if g["params"]]


class _BudgetClock:
    """Fraction of a time budget used since training started (0 without a budget).

    With --time-limit the cosine schedule follows whichever is further along, steps or time, so a run
    cut short by its budget still ends at a low learning rate instead of mid-schedule.
    """

    def __init__(self, budget_s: float | None) -> None:
        self.budget_s, self.start = budget_s, time.monotonic()

    def __call__(self) -> float:
        return min(1.0, (time.monotonic() - self.start) / self.budget_s) if self.budget_s else 0.0


def progressive_size(full: int, start: float, progress: float, *, grow_until: float = 0.75) -> int:
    """The training input size of progressive resizing at `progress` (0 to 1) of the run: from `start` x
    `full` it grows linearly to `full` at `grow_until` and stays there, so the last quarter trains at the
    size the model is validated and used at. Sizes below full are multiples of 16 (whole feature maps
    at the usual strides) and never under 32."""
    fraction = start + (1 - start) * min(1.0, progress / grow_until)
    size = max(32, int(full * fraction) // 16 * 16)
    return full if size >= full or progress >= grow_until else size


def _warmup_cosine(step: int, warmup: int, total: int, time_progress: float = 0.0) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_progress))
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))
