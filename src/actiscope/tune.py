"""`actiscope tune`: a hyperparameter search with Optuna. Each trial is a real training (engine.fit) of the
base options with some of them changed, on one split for every trial without its test images, scored by its
best validation accuracy; TPE chooses what to try next and a median pruner stops a trial whose validation
accuracy falls behind the others' at the same epoch. The study lives in SQLite in the output folder, so a
rerun continues it. At the end the best trial's options become best.yaml and its model is evaluated once on
the test images no trial saw.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from actiscope.data.split import SplitManifest
from actiscope.engine import fit
from actiscope.engine.fit import TrainingInterrupted
from actiscope.engine.module import NonFiniteLossError
from actiscope.errors import ActiscopeError
from actiscope.evaluate.report import evaluate
from actiscope.evaluate.trials import cell, plot_search, write_leaderboard
from actiscope.files import atomic_write_text
from actiscope.models.registry import get_entry
from actiscope.options import AUGMENTS, OutputOptions, TrainOptions
from actiscope.run import TuneDir

log = logging.getLogger(__name__)

# What a search varies (flat option keys, plus `blend` for MixUp or CutMix), in the leaderboard's order.
SEARCHED = (
    "lr",
    "weight_decay",
    "label_smoothing",
    "blend",
    "augment",
    "image_size",
    "backbone_lr_mult",
    "head_epochs",
)
# One categorical choice rather than two alphas that are mostly zero: TPE models it better, and the alphas
# are the usual ones (MixUp's paper and timm use 0.2 to 0.8 and 1.0).
BLENDS: dict[str, dict[str, float]] = {
    "none": {"mixup": 0.0, "cutmix": 0.0},
    "mixup": {"mixup": 0.2, "cutmix": 0.0},
    "cutmix": {"mixup": 0.0, "cutmix": 1.0},
}
STUDY = "actiscope-tune"
# What may end a trial without ending the search: a loss that diverged (a learning rate too high), torch's
# RuntimeErrors (out of memory, an input size an architecture cannot take), MemoryError.
TRIAL_FAILURES = (NonFiniteLossError, RuntimeError, MemoryError)


class TuneError(ActiscopeError):
    pass


class TuneInterrupted(ActiscopeError):
    exit_code = 130


@dataclass
class Search:
    out: Path
    trials: int  # the trials that count towards --trials (done, pruned or failed)
    ran: int  # of which this call ran
    pruned: int
    best: FrozenTrial | None
    test: dict[str, float] | None  # the best trial's test accuracy and macro-F1, measured once


def tune(
    base: TrainOptions,
    *,
    out: Path,
    trials: int | None = None,
    time_limit: float | None = None,
    fixed: Collection[str] = (),
    prune_startup: int = 5,
    prune_warmup: int = 1,
) -> Search:
    """Search around `base` (the recipe or the defaults; its time limit is each trial's) for `trials` trials in
    all (a rerun counts the earlier ones) or until `time_limit` minutes have passed. `fixed`: the flat keys of
    options the user gave, which the search leaves as they are. The pruner waits for `prune_startup` finished
    trials and `prune_warmup` epochs of each trial."""
    _check_budget(base, trials, time_limit)
    kind = get_entry(base.model.architecture).kind  # an unknown name fails here, before any training
    directory = TuneDir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TuneError(
            f"cannot write the search to {out} ({exc.strerror or exc}); choose a writable --out"
        ) from None
    split = _shared_split(base, directory)
    study = open_study(
        directory, seed=base.trainer.seed, prune_startup=prune_startup, prune_warmup=prune_warmup
    )
    _check_same_search(study, base, fixed, directory)
    _fail_stale(study)
    if not study.trials:  # the first trial is the base itself: what the search has to beat
        study.enqueue_trial(_base_params(base, kind))
    started, ran = time.monotonic(), 0
    while trials is None or _counted(study) < trials:
        minutes = _trial_minutes(base.trainer.time_limit, time_limit, started)
        if minutes == 0:
            break
        try:
            _run_trial(
                study, base.override(split=str(directory.search_split)), directory, fixed, kind, minutes
            )
        finally:  # an interrupted trial is on the leaderboard too
            write_leaderboard(directory, study, SEARCHED)
        ran += 1
    test = _finish(study, directory, base.override(split=str(split.resolve())))
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    return Search(out, _counted(study), ran, len(pruned), study.best_trial if done else None, test)


def _check_budget(base: TrainOptions, trials: int | None, time_limit: float | None) -> None:
    if trials is None and time_limit is None:
        raise TuneError("give --trials, --time-limit or both: the search needs an end")
    if trials is not None and trials < 1:
        raise TuneError(f"--trials {trials}: give one or more")
    if time_limit is not None and time_limit <= 0:
        raise TuneError(f"--time-limit must be positive minutes, got {time_limit}")
    if base.trainer.devices * base.trainer.num_nodes > 1:
        raise TuneError("a search trains its trials in this process, one after the other: use --devices 1")


def open_study(
    directory: TuneDir, *, seed: int = 0, prune_startup: int = 5, prune_warmup: int = 1
) -> optuna.Study:
    """The search's study in its SQLite file, created or continued."""
    import sqlalchemy.exc

    directory.path.mkdir(parents=True, exist_ok=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=prune_startup, n_warmup_steps=prune_warmup)
    try:
        study = optuna.create_study(
            study_name=STUDY,
            storage=f"sqlite:///{directory.study.resolve()}",
            direction="maximize",
            pruner=pruner,
            load_if_exists=True,
        )
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise TuneError(
            f"{directory.study}: not a study this version can open ({str(exc).splitlines()[0]}); "
            "choose another --out"
        ) from None
    # Seeded by the trials so far: a continued search does not draw its first trials' values again.
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials), n_startup_trials=5)
    return study


def suggest(trial: optuna.Trial, base: TrainOptions, fixed: Collection[str], kind: str) -> dict[str, Any]:
    """The options one trial changes (flat keys): each searched option the user did not fix, in a range
    around the base value (the recipe's or the default)."""
    optim, free = base.optim, (lambda key: key not in fixed)
    values: dict[str, Any] = {}
    if free("lr"):
        values["lr"] = trial.suggest_float("lr", optim.lr / 10, optim.lr * 10, log=True)
    if free("weight_decay"):
        values["weight_decay"] = trial.suggest_float("weight_decay", 1e-5, 0.1, log=True)
    if free("label_smoothing"):
        values["label_smoothing"] = trial.suggest_float("label_smoothing", 0.0, 0.2)
    # linear mode trains on cached features: no pixels to blend, and augmentation only with --views > 1
    if kind == "image" and optim.mode != "linear" and free("mixup") and free("cutmix"):
        values |= BLENDS[trial.suggest_categorical("blend", list(BLENDS))]
    if free("augment") and (optim.mode != "linear" or optim.views > 1):
        values["augment"] = trial.suggest_categorical("augment", list(AUGMENTS))
    if free("image_size"):
        values["image_size"] = trial.suggest_categorical("image_size", _image_sizes(base))
    if optim.mode == "finetune" and free("backbone_lr_mult"):
        values["backbone_lr_mult"] = trial.suggest_float("backbone_lr_mult", 0.01, 1.0, log=True)
    if optim.mode == "finetune" and free("head_epochs"):
        values["head_epochs"] = trial.suggest_int("head_epochs", 0, 15, step=5)
    return values


def _base_size(base: TrainOptions) -> int:
    return base.model.image_size or get_entry(base.model.architecture).data_config.image_size


def _image_sizes(base: TrainOptions) -> list[int]:
    """The base size and about a quarter less and more, in steps of 32 pixels."""
    size = _base_size(base)
    return sorted({size} | {max(32, round(size * f / 32) * 32) for f in (0.75, 1.25)})


def _base_params(base: TrainOptions, kind: str) -> dict[str, Any]:
    """The base options as the search's parameters (those a trial does not suggest are ignored)."""
    optim = base.optim
    params: dict[str, Any] = {
        "lr": optim.lr,
        "weight_decay": optim.weight_decay,
        "label_smoothing": optim.label_smoothing,
        "augment": base.data.augment,
        "image_size": _base_size(base),
        "backbone_lr_mult": optim.backbone_lr_mult,
        "head_epochs": optim.head_epochs,
    }
    blend = next((k for k, v in BLENDS.items() if v == {"mixup": optim.mixup, "cutmix": optim.cutmix}), None)
    if blend is not None and kind == "image":
        params["blend"] = blend
    return params


def _shared_split(base: TrainOptions, directory: TuneDir) -> Path:
    """One split for every trial: the given one, or the search's own (made once, reused on a rerun). The
    trials get it without its test images (search_split): those are for the best trial, once, at the end."""
    split = Path(base.data.split) if base.data.split else directory.split
    manifest = SplitManifest.load(split) if split.is_file() else fit.split_manifest(base)
    if not any(e.split == "val" for e in manifest.entries):
        where = base.data.split or f"--val {base.data.val}"
        raise TuneError(f"{where}: no validation images to score the trials on; give --val above 0")
    if not split.is_file():
        manifest.save(split)
    replace(manifest, entries=[e for e in manifest.entries if e.split != "test"]).save(directory.search_split)
    return split


def _check_same_search(
    study: optuna.Study, base: TrainOptions, fixed: Collection[str], directory: TuneDir
) -> None:
    """A rerun continues the search it finds only with the options that search had (else its trials would
    not be comparable); a new study records them."""
    # as the study stores them (JSON: a tuple of loggers comes back a list)
    options, given = json.loads(json.dumps(base.flat())), sorted(fixed)
    if "options" not in study.user_attrs:
        study.set_user_attr("options", options)
        study.set_user_attr("fixed", given)
        return
    earlier = study.user_attrs
    changed = [k.replace("_", "-") for k, v in options.items() if earlier["options"].get(k) != v]
    if earlier["fixed"] != given:
        changed.append("which options are given")
    if changed:
        raise TuneError(
            f"{directory.path} holds a search with other options ({', '.join(changed)}); rerun it "
            "with the same options, or choose another --out"
        )


def _fail_stale(study: optuna.Study) -> None:
    """A trial still running in the study was cut off (the process was killed): it does not count. One search
    per folder at a time."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        log.info(
            "trial %d did not finish when the search stopped; it is run again as a new trial", trial.number
        )


def _counted(study: optuna.Study) -> int:
    """The trials that count towards --trials: done, pruned, or failed for a reason of their own (not the
    interrupted ones)."""
    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and "error" in t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    )


def _trial_minutes(per_trial: float | None, total: float | None, started: float) -> float | None:
    """The next trial's time limit (None: its epochs decide), or 0 when the search's time is up: a trial
    starts with at least half of its own budget left (without one, half a minute)."""
    if total is None:
        return per_trial
    left = total - (time.monotonic() - started) / 60
    if left < min(per_trial or 1.0, total) / 2:
        return 0
    return min(per_trial, left) if per_trial else left


def _run_trial(
    study: optuna.Study,
    base: TrainOptions,
    directory: TuneDir,
    fixed: Collection[str],
    kind: str,
    minutes: float | None,
) -> None:
    from optuna_integration import PyTorchLightningPruningCallback

    trial = study.ask()
    changes = suggest(trial, base, fixed, kind)
    run = directory.trial(trial.number)
    shutil.rmtree(run.path, ignore_errors=True)  # a trial number is never reused; this is an older study's
    options = base.override(
        **changes, out=str(run.path.parent), name=run.name, export="none", time_limit=minutes
    )
    budget = f" ({minutes:.1f} min)" if minutes else ""
    log.info("trial %d: %s%s", trial.number, _describe(trial.params) or "the base options", budget)
    try:
        # optuna-integration's callback imports `lightning.pytorch` (Lightning 2.x): it reports val_acc after
        # every validation and raises optuna.TrialPruned out of Trainer.fit when the pruner says so.
        fit.train(options, callbacks=[PyTorchLightningPruningCallback(trial, monitor="val_acc")])
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
        log.info(
            "trial %d: pruned after epoch %d, behind the median of the earlier trials",
            trial.number,
            len(study.trials[trial.number].intermediate_values),
        )
        return
    except (TrainingInterrupted, KeyboardInterrupt):
        study.tell(trial, state=TrialState.FAIL)
        raise TuneInterrupted(
            f"interrupted in trial {trial.number}; the finished trials are in {directory.study}: "
            "run the same command again to continue the search"
        ) from None
    except TRIAL_FAILURES as exc:
        message = str(exc).strip()
        _fail(study, trial, message.splitlines()[0][:300] if message else type(exc).__name__)
        return
    finally:
        shutil.rmtree(run.checkpoints, ignore_errors=True)  # a trial is never resumed; its package stays
    score = _best_val_acc(run.history)
    if score is None:
        _fail(study, trial, "no epoch was validated within its time")
        return
    study.tell(trial, score)
    best = study.best_trial
    log.info(
        "trial %d: validation accuracy %.4f (best so far: %.4f, trial %d)",
        trial.number,
        score,
        best.value,
        best.number,
    )


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("error", reason)
    study.tell(trial, state=TrialState.FAIL)
    log.warning("trial %d failed: %s", trial.number, reason)


def _best_val_acc(history: Path) -> float | None:
    """The best epoch's validation accuracy (the epoch whose weights the trial's package holds)."""
    if not history.is_file():
        return None
    with history.open(newline="", encoding="utf-8") as fh:
        scores = [float(r["val_acc"]) for r in csv.DictReader(fh) if r.get("val_acc")]
    scores = [s for s in scores if math.isfinite(s)]
    return max(scores) if scores else None


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', '-')} {cell(v)}" for k, v in params.items())


# -- the end of a search: best.yaml, best/ and its one test evaluation, plots, leaderboard -------------------
def _finish(study: optuna.Study, directory: TuneDir, base: TrainOptions) -> dict[str, float] | None:
    """`base`: the search's options on the shared split (with its test images)."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        write_leaderboard(directory, study, SEARCHED)
        return None
    best = study.best_trial
    trial_options = TrainOptions.from_yaml(directory.trial(best.number).config)
    # The trial's options on the whole split, with a run name and folder of the user's (not the trial's)
    options = replace(trial_options.override(split=base.data.split), output=OutputOptions())
    atomic_write_text(directory.best_config, options.to_yaml())
    test = _keep_best(directory, best, options)
    plot_search(study, directory)
    write_leaderboard(directory, study, SEARCHED, test)
    return test


def _keep_best(directory: TuneDir, best: FrozenTrial, options: TrainOptions) -> dict[str, float] | None:
    """best/: the best trial's run (package, history, curves) with the shared split and best.yaml as its
    config, evaluated on the test images, the first any model of the search sees. Redone only when the best
    trial changes; its trial.json, written last, says which trial it holds and what the test gave."""
    marker = directory.best_trial
    if marker.is_file():
        kept = json.loads(marker.read_text(encoding="utf-8"))
        if kept["trial"] == best.number:
            return kept["test"]
    trial, target = directory.trial(best.number), directory.best
    staging = directory.path / (target.path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(trial.model, staging / target.model.name)
    for file in (trial.history, trial.curves):
        if file.is_file():
            shutil.copy2(file, staging / file.name)
    shutil.copy2(str(options.data.split), staging / target.split.name)
    atomic_write_text(staging / target.config.name, options.to_yaml())
    shutil.rmtree(target.path, ignore_errors=True)
    staging.rename(target.path)
    test = None
    if any(e.split == "test" for e in SplitManifest.load(target.split).entries):
        metrics = evaluate(target.path, workers=options.data.workers).metrics
        test = {"accuracy": metrics["accuracy"], "macro_f1": metrics["f1"]["macro"]}
        log.info(
            "best: trial %d, validation accuracy %.4f; on the test images (measured once, after the "
            "search): accuracy %.4f, macro-F1 %.4f",
            best.number,
            best.value,
            test["accuracy"],
            test["macro_f1"],
        )
    atomic_write_text(marker, json.dumps({"trial": best.number, "val_acc": best.value, "test": test}))
    return test
