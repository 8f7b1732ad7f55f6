"""`actiscope tune`: a search on tiny data finishes, prunes a trial that falls behind, keeps the test images
for the best trial alone, resumes after an interruption, and writes a best.yaml that `train --config` takes."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from actiscope import tune as tune_module
from actiscope.cli import main
from actiscope.data.split import SplitManifest
from actiscope.engine import fit
from actiscope.engine.fit import RunResult
from actiscope.options import TrainOptions
from actiscope.run import TuneDir
from actiscope.tune import open_study, tune
from actiscope.web import services
from tests.conftest import write_colour_classes

TINY = {
    "model": "simple-cnn",
    "image_size": 32,
    "batch_size": 8,
    "workers": 0,
    "cache": False,
    "precision": "32",
}
FIXED = {*TINY, "epochs"}  # what the search leaves alone, as if given on the command line


def _rows(directory: TuneDir) -> list[dict[str, str]]:
    with directory.leaderboard.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> tuple[tune_module.Search, TuneDir]:
    """Three trials of two epochs: a good learning rate; one 30 times smaller, at chance after its second
    epoch where the good one has learned the colours (the median pruner, consulted from the second epoch
    on, stops it there); and TPE's choice."""
    root = tmp_path_factory.mktemp("search")
    data = write_colour_classes(root / "data", per_class=14)
    directory = TuneDir(root / "tune")
    study = open_study(directory)
    rest = {"weight_decay": 0.05, "label_smoothing": 0.0, "blend": "none", "augment": "light"}
    study.enqueue_trial({"lr": 3e-3, **rest})
    study.enqueue_trial({"lr": 1e-4, **rest})
    base = TrainOptions.from_flat(data=str(data), epochs=2, **TINY)
    result = tune(base, out=directory.path, trials=3, fixed=FIXED, prune_startup=1, prune_warmup=1)
    return result, directory


def test_a_search_finishes_and_prunes_the_trial_that_falls_behind(
    search: tuple[tune_module.Search, TuneDir],
) -> None:
    result, directory = search
    assert (result.trials, result.ran) == (3, 3) and result.pruned >= 1
    rows = {int(r["trial"]): r for r in _rows(directory)}
    assert sorted(rows) == [0, 1, 2]
    assert rows[1]["state"] == "pruned after epoch 2" and float(rows[1]["val_acc"]) < float(
        rows[0]["val_acc"]
    )
    assert not directory.trial(1).has_model()  # stopped before it finished
    assert rows[0]["state"] == "done" and directory.trial(0).has_model()
    assert result.best is not None and rows[result.best.number]["rank"] == "1"
    assert float(rows[result.best.number]["val_acc"]) == round(result.best.value, 4)
    assert float(rows[0]["lr"]) == 0.003 and {"weight_decay", "label_smoothing", "blend", "augment"} <= set(
        rows[0]
    )
    assert "image_size" not in rows[0] and "epochs" not in result.best.params  # fixed: not searched
    assert not any(directory.trial(n).checkpoints.exists() for n in rows)  # a trial is never resumed
    md = directory.leaderboard_md.read_text(encoding="utf-8")
    assert "pruned after epoch 2" in md and "](history.png)" in md and "Test split, measured once" in md
    assert directory.history_plot.read_bytes()[:4] == b"\x89PNG"


def test_no_trial_sees_the_test_images_and_the_best_is_evaluated_on_them_once(
    search: tuple[tune_module.Search, TuneDir],
) -> None:
    result, directory = search
    shared = SplitManifest.load(directory.split)
    seen = [e for e in shared.entries if e.split != "test"]
    assert any(e.split == "test" for e in shared.entries)
    for number in range(3):
        trial_split = SplitManifest.load(directory.trial(number).split)
        assert trial_split.entries == seen  # the same train and val images for every trial, no test image
    best = directory.best
    assert SplitManifest.load(best.split).entries == shared.entries and best.has_model()
    metrics = json.loads(best.eval.metrics.read_text(encoding="utf-8"))
    assert metrics["split"] == "test" and metrics["images"] == sum(e.split == "test" for e in shared.entries)
    assert result.test == {"accuracy": metrics["accuracy"], "macro_f1": metrics["f1"]["macro"]}
    assert json.loads(directory.best_trial.read_text(encoding="utf-8"))["trial"] == result.best.number


def test_best_yaml_is_the_best_trial_on_the_whole_split_and_train_takes_it(
    search: tuple[tune_module.Search, TuneDir], capsys: pytest.CaptureFixture[str]
) -> None:
    result, directory = search
    best = TrainOptions.from_yaml(directory.best_config)
    trial = TrainOptions.from_yaml(directory.trial(result.best.number).config)
    assert best.optim == trial.optim and best.model == trial.model and best.data.path == trial.data.path
    assert best.data.split == str(directory.split.resolve()) and best.output.name is None
    assert best.optim.lr == pytest.approx(result.best.params["lr"])
    assert main(["train", "--config", str(directory.best_config), "--print-config"]) == 0
    printed = capsys.readouterr().out  # a config from scratch is the scratch recipe with every option given
    assert (
        printed
        == "# recipe: scratch from scratch (all options given)\n"
        + directory.best_config.read_text(encoding="utf-8")
    )


@pytest.mark.django_db
def test_the_dashboard_shows_the_search_and_its_best_run(
    search: tuple[tune_module.Search, TuneDir], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, directory = search
    settings.RUNS_DIR = directory.path.parent
    monkeypatch.setattr(services, "MODEL", services.ModelService())
    page = Client().get("/runs").content.decode()
    assert f"Search: {directory.path.name}" in page and "pruned after epoch 2" in page
    assert f'href="/runs/{directory.path.name}--best"' in page
    assert Client().get(f"/runs/{directory.path.name}--best").status_code == 200


def test_an_interrupted_search_resumes_with_only_the_trials_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_colour_classes(tmp_path / "data", per_class=10)
    out = tmp_path / "tune"
    # --test 0: no test images, so the search ends without the best trial's test evaluation (saves time)
    tiny = "--test 0 --epochs 1 --image-size 32 --batch-size 8 --workers 0 --no-cache --precision 32"
    argv = ["tune", str(data), "--out", str(out), *tiny.split()]
    real_train, trained = fit.train, []

    def train(options: TrainOptions, **kw: Any) -> RunResult:
        trained.append(options.output.name)
        if len(trained) == 3:
            raise KeyboardInterrupt  # Ctrl-C as the third trial starts
        return real_train(options, **kw)

    monkeypatch.setattr(fit, "train", train)
    assert main([*argv, "--trials", "3"]) == 130
    assert "run the same command again to continue" in capsys.readouterr().err
    assert [r["state"] for r in _rows(TuneDir(out))][-1] == "interrupted"

    assert main([*argv, "--trials", "3"]) == 0
    assert trained == [f"trial-00{n}" for n in range(4)]  # one more: the interrupted one does not count
    printed = capsys.readouterr().out
    assert "3 trials, 0 pruned, 1 run now" in printed and "test split" not in printed
    assert TuneDir(out).best.has_model() and not TuneDir(out).best.eval.metrics.exists()
    assert main([*argv, "--trials", "3"]) == 0 and len(trained) == 4  # nothing left to run

    code = main([*argv, "--trials", "4", "--lr", "0.01"])  # other options: not the same search
    assert code == 2 and "holds a search with other options" in capsys.readouterr().err


def test_each_trial_gets_at_most_what_is_left_of_the_search_and_none_starts_with_too_little() -> None:
    from actiscope.tune import _trial_minutes

    now = time.monotonic()
    assert _trial_minutes(2.0, None, now) == 2.0 and _trial_minutes(None, None, now) is None
    assert _trial_minutes(2.0, 10.0, now) == 2.0
    assert _trial_minutes(2.0, 10.0, now - 8.5 * 60) == pytest.approx(
        1.5, abs=0.01
    )  # the last one is cut short
    assert _trial_minutes(2.0, 10.0, now - 9.5 * 60) == 0  # half a trial's budget is not left: stop
    assert _trial_minutes(None, 10.0, now - 5 * 60) == pytest.approx(5.0, abs=0.01)  # epochs decide, within 5
