"""`actiscope data audit`: the images whose given label is least likely, for a person to review.

Confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 2021), written here on numpy and scikit-learn because cleanlab is AGPL:
1. out-of-sample probabilities for every image: k-fold cross-validation of a logistic-regression head on
   the pretrained backbone's features, computed once (seconds per fold, not a training per fold); without
   pretrained weights (`--weights none`, or `auto` where none can be had) the quick recipe is a small CNN
   trained from scratch per fold on the decoded images (SCRATCH_*; minutes, and weaker probabilities);
2. per-class thresholds: the mean probability of class j over the images labelled j;
3. the confident joint: an image counts for class j when its probability of j reaches j's threshold
   (the most probable such class when several do); images counted off the diagonal (given label i,
   confidently j) are the likely label issues, ranked by how unlikely their given label is.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from actiscope.data.formats import Sample
from actiscope.errors import ActiscopeError
from actiscope.files import atomic_output, atomic_write_text

log = logging.getLogger(__name__)

EXCLUDE_COLUMN = "exclude"  # the CSV column a reviewer edits; `--exclude FILE` reads it back
# The quick recipe per fold without pretrained weights: ShuffleNetV2 from scratch (a stride-4 stem, so
# 64 px costs ~0.2 s per batch of 64 on 2 cores, where simple-cnn's full-resolution convolutions cost
# 0.67 s), one cosine run of SCRATCH_EPOCHS passes over the fold's images and their mirrors, at least
# SCRATCH_STEPS optimiser steps (a small dataset needs more passes), and at most the fold's share of
# --time-limit (SCRATCH_MINUTES in all), the schedule following whichever ends first.
SCRATCH_MODEL, SCRATCH_SIZE, SCRATCH_BATCH, SCRATCH_LR = "shufflenet_v2_x1_0", 64, 64, 1e-2
SCRATCH_EPOCHS, SCRATCH_STEPS, SCRATCH_MINUTES = 8, 40, 10.0


class AuditError(ActiscopeError):
    pass


@dataclass(frozen=True)
class LabelIssue:
    rank: int
    file: str
    given: str
    suggested: str
    p_given: float
    p_suggested: float


@dataclass(frozen=True)
class Audit:
    out: Path
    issues: list[LabelIssue]
    images: int
    classes: list[str]
    folds: int
    accuracy: float  # out-of-sample accuracy of the head against the given labels
    confident_joint: list[list[int]]  # rows: given label, columns: confident label
    feature_s: float
    fit_s: float
    unreadable: list[str]
    method: str = "features"  # "features": a head on pretrained features; "scratch": a CNN per fold

    @property
    def table(self) -> Path:
        return self.out / "audit.csv"

    @property
    def grid(self) -> Path:
        return self.out / "audit.png"

    @property
    def summary(self) -> Path:
        return self.out / "audit.json"


def confident_joint(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(joint K x K, confident label per image or -1 where no class reaches its threshold, thresholds)."""
    classes = probs.shape[1]
    thresholds = np.array(
        [probs[labels == k, k].mean() if (labels == k).any() else np.inf for k in range(classes)]
    )
    above = probs >= thresholds[None, :]
    confident = np.where(above.any(axis=1), np.where(above, probs, -np.inf).argmax(axis=1), -1)
    joint = np.zeros((classes, classes), dtype=int)
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    return joint, confident, thresholds


def label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Indices of the likely label issues (off the confident joint's diagonal), least likely label first."""
    _, confident, _ = confident_joint(labels, probs)
    found = np.flatnonzero((confident >= 0) & (confident != labels))
    return found[np.argsort(probs[found, labels[found]], kind="stable")]


def out_of_sample_probabilities(
    features: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Every image's class probabilities from a head that never saw it (stratified k-fold)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    return cross_val_predict(head, features, labels, cv=_folds(labels, folds, seed), method="predict_proba")


def audit(
    data: str | Path,
    *,
    out: Path,
    model: str = "mobilenet_v2",
    weights: str = "auto",
    data_format: str | None = None,
    images: str | Path | None = None,
    folds: int = 5,
    seed: int = 0,
    show: int = 30,
    image_size: int | None = None,
    batch_size: int = 32,
    time_limit: float = SCRATCH_MINUTES,
) -> Audit:
    """Rank `data`'s likely mislabelled images; writes audit.csv, audit.png (the first `show`) and audit.json.
    `time_limit`: minutes for all the folds trained from scratch (without pretrained weights)."""
    from actiscope.data.formats import load_dataset

    if folds < 2:
        raise AuditError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if not time_limit > 0:
        raise AuditError(
            f"--time-limit {time_limit}: give the minutes the folds from scratch may take, above 0"
        )
    dataset = load_dataset(data, data_format, images=images)
    if dataset.kind != "image":
        raise AuditError(f"{data}: the audit works on images; this dataset holds {dataset.kind} clips")
    samples = [s for s in dataset.samples if s.label is not None]
    classes = sorted({s.label for s in samples if s.label is not None})
    if len(classes) < 2:
        raise AuditError(f"{data}: the audit needs labelled images of at least two classes")
    if weights == "auto":  # once the dataset is known to be fine: this may download
        from actiscope.models.weights import resolve_auto

        weights, why = resolve_auto(model)
        if why:
            log.warning("audit from scratch, no pretrained weights: %s", why)

    started = time.perf_counter()
    if weights == "none":
        pixels, kept, unreadable = _decoded(samples, image_size or SCRATCH_SIZE)
    else:
        features, kept, unreadable = _features(samples, model, weights, image_size, batch_size, len(classes))
    feature_s = time.perf_counter() - started
    labels = np.array([classes.index(str(samples[i].label)) for i in kept])
    started = time.perf_counter()
    if weights == "none":
        probs = scratch_probabilities(pixels, labels, classes, folds=folds, seed=seed, minutes=time_limit)
    else:
        probs = out_of_sample_probabilities(features, labels, folds=folds, seed=seed)
    fit_s = time.perf_counter() - started
    joint, confident, _ = confident_joint(labels, probs)
    issues = [
        LabelIssue(
            rank=rank,
            file=str(samples[kept[i]].path),
            given=classes[labels[i]],
            suggested=classes[confident[i]],
            p_given=round(float(probs[i, labels[i]]), 4),
            p_suggested=round(float(probs[i, confident[i]]), 4),
        )
        for rank, i in enumerate(label_issues(labels, probs), start=1)
    ]
    result = Audit(
        out=out,
        issues=issues,
        images=len(kept),
        classes=classes,
        folds=folds,
        accuracy=round(float((probs.argmax(1) == labels).mean()), 4),
        confident_joint=joint.tolist(),
        feature_s=round(feature_s, 1),
        fit_s=round(fit_s, 1),
        unreadable=unreadable,
        method="scratch" if weights == "none" else "features",
    )
    _write(result, show)
    return result


def _folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    smallest = np.bincount(labels).min()
    if smallest < folds:
        raise AuditError(f"--folds {folds}: the smallest class has only {smallest} images; use fewer folds")
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(labels, labels))


def scratch_probabilities(
    pixels: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    *,
    folds: int = 5,
    seed: int = 0,
    minutes: float = SCRATCH_MINUTES,
) -> np.ndarray:
    """Every image's class probabilities from a small CNN trained from scratch on the other folds (the
    quick recipe SCRATCH_*, one Lightning fit per fold within its share of `minutes`, mirror images as
    augmentation); `pixels` NHWC uint8. Each fit is a single epoch of the recipe's steps drawn with
    replacement, so a small dataset costs steps, not many short epochs of Lightning's per-epoch work."""
    from datetime import timedelta

    import lightning as L
    import torch
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    from actiscope.engine.module import ActionClassifier
    from actiscope.options import ModelOptions, OptimOptions

    split = _folds(labels, folds, seed)
    budget_s = minutes * 60 / folds
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    x = torch.cat([x, x.flip(-1)])  # each image and its mirror image
    y = torch.from_numpy(labels).long()
    probs = np.zeros((len(labels), len(classes)), np.float32)
    for fold, (train, held_out) in enumerate(split):
        L.seed_everything(seed + fold, verbose=False)
        both = np.concatenate([train, train + len(labels)])
        steps = max(SCRATCH_STEPS, math.ceil(SCRATCH_EPOCHS * len(both) / SCRATCH_BATCH))
        module = ActionClassifier(
            ModelOptions(architecture=SCRATCH_MODEL, image_size=pixels.shape[1]),
            OptimOptions(epochs=1, batch_size=SCRATCH_BATCH, lr=SCRATCH_LR, scheduler="cosine"),
            classes,
            time_budget_s=budget_s,
        )
        fold_set = TensorDataset(x[both], torch.cat([y[train], y[train]]))
        sampler = RandomSampler(fold_set, replacement=True, num_samples=steps * SCRATCH_BATCH)
        trainer = L.Trainer(
            max_epochs=1,
            max_time=timedelta(seconds=budget_s),
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(module, DataLoader(fold_set, batch_size=SCRATCH_BATCH, sampler=sampler))
        module.eval()
        with torch.inference_mode():
            probs[held_out] = torch.softmax(module(x[held_out]).float(), 1).numpy()
        log.info(
            "audit: fold %d of %d trained from scratch, %d of %d steps",
            fold + 1,
            folds,
            trainer.global_step,
            steps,
        )
    return probs


def _decoded(samples: list[Sample], size: int) -> tuple[np.ndarray, list[int], list[str]]:
    """Every readable image decoded once (into the cache) at `size`: NHWC uint8, their indices, the rest."""
    from actiscope.data.cache import build_cache

    cache = build_cache(samples, size)
    unreadable = [f"{samples[i].path}: {why}" for i, why in sorted(cache.bad.items())]
    return np.ascontiguousarray(cache.pixels[cache.good]), list(cache.good), unreadable


def _features(
    samples: list[Sample],
    model_name: str,
    weights: str,
    image_size: int | None,
    batch_size: int,
    classes: int,
) -> tuple[np.ndarray, list[int], list[str]]:
    """The frozen backbone's pooled features of every readable image (decoded once into the cache)."""
    import torch

    from actiscope.data.cache import build_cache
    from actiscope.data.config import DataConfig
    from actiscope.data.transforms import eval_transform
    from actiscope.models.registry import create_model, get_entry
    from actiscope.models.weights import load_weights

    entry = get_entry(model_name)
    if entry.kind != "image":
        raise AuditError(f"--model {model_name}: the audit needs an image model")
    config = DataConfig(
        image_size or entry.data_config.image_size, entry.data_config.mean, entry.data_config.std
    )
    network = create_model(model_name, classes)
    load_weights(network, weights)
    network.eval()
    cache = build_cache(samples, config.image_size)
    kept = cache.good
    normalize = eval_transform(config)
    chunks = []
    log.info("audit: features of %d images (%s, %d px)", len(kept), model_name, config.image_size)
    with torch.inference_mode():
        for start in range(0, len(kept), batch_size):
            pixels = torch.from_numpy(np.ascontiguousarray(cache.pixels[kept[start : start + batch_size]]))
            chunks.append(network.forward_features(normalize(pixels.permute(0, 3, 1, 2))).float().numpy())
    unreadable = [f"{samples[i].path}: {why}" for i, why in sorted(cache.bad.items())]
    return np.concatenate(chunks), kept, unreadable


def _write(result: Audit, show: int) -> None:
    from actiscope.evaluate.plots import plot_mistakes

    result.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(result.table) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rank", "file", "given", "suggested", "p_given", "p_suggested", EXCLUDE_COLUMN])
        for issue in result.issues:  # "yes" until a reviewer says the given label is right
            writer.writerow([*asdict(issue).values(), "yes"])
    shown = [(Path(i.file), i.given, i.suggested, i.p_suggested) for i in result.issues[:show]]
    plot_mistakes(shown, result.grid, columns=6, labels=("given", "suggested"))
    summary = {k: v for k, v in asdict(result).items() if k not in ("out", "issues")}
    atomic_write_text(result.summary, json.dumps({**summary, "issues": len(result.issues)}, indent=1))
