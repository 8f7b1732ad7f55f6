"""The Python API: the README's example runs as written, the results show themselves (HTML with the
numbers and the plots inline), the training options are typed keyword arguments resolved as the CLI
resolves them, and `import actiscope` stays light."""

from __future__ import annotations

import base64
import csv
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_type_hints

import numpy as np
import pytest
from PIL import Image

from actiscope import api
from actiscope.api import Predictor, Run, TrainArguments
from actiscope.cli import main
from actiscope.errors import ActiscopeError
from actiscope.options import TrainOptions, _key, _option_fields
from tests.conftest import COLOURS, truncated_jpeg, write_colour_classes

README = Path(__file__).resolve().parents[1] / "README.md"
IMAGE = re.compile(r'<img src="data:image/png;base64,([^"]+)"')
PATH_OPTIONS = ("weights", "split", "exclude", "out")  # the options that may name a file or folder


def _readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _inline_png(html: str) -> bytes:
    found = IMAGE.search(html)
    assert found, html[:500]
    return base64.b64decode(found[1])


def test_the_readme_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where the paths it names exist (a tiny dataset as data/har15, an image as photo.jpg), with no
    ImageNet weights to be had: `weights="auto"` trains from scratch."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "har15").symlink_to(write_colour_classes(tmp_path / "colours", per_class=12))
    Image.new("RGB", (48, 40), COLOURS["green"]).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(_readme_example(), str(README), "exec"), namespace)

    run, ev, predictions = namespace["run"], namespace["ev"], namespace["predictions"]
    assert (
        isinstance(run, Run) and isinstance(ev, api.Evaluation) and isinstance(predictions, api.Predictions)
    )
    assert run.path.resolve().parent == (tmp_path / "runs").resolve() and run.package == run.path / "model"
    options = TrainOptions.from_yaml(run.path / "config.yaml")
    assert (
        run.path.name.startswith(options.model.architecture) and options.model.weights == "none"
    )  # no ImageNet
    assert (
        options.optim.epochs == run.epochs == len(run.history) and options.optim.lr == 2e-3
    )  # scratch recipe
    assert ev.out == run.path / "eval" and ev.report.is_file() and ev.metrics["split"] == "test"
    [row] = predictions
    assert row["filename"] == "photo.jpg" and row["label"] in COLOURS and not predictions.failed
    with open("predictions.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == [{k: str(v) for k, v in row.items()} | {"error": ""}]
    assert capsys.readouterr().out.strip().splitlines()[-1] in COLOURS  # the example's last line: a label


def test_a_run_shows_its_metrics_and_curves(trained_run: Path) -> None:
    run = Run.load(trained_run)
    html = run._repr_html_()
    assert (
        "test_acc" in html and f"{run.metrics['test_acc']:.4f}" in html and str(trained_run / "model") in html
    )
    assert _inline_png(html) == (trained_run / "curves.png").read_bytes()
    line = repr(run)
    assert (
        "\n" not in line
        and str(trained_run) in line
        and f"test accuracy {run.metrics['test_acc']:.4f}" in line
    )
    assert [r["epoch"] for r in run.history] == [1, 2, 3] and run.epochs == 3
    assert run.history[-1]["val_acc"] is not None and run.curves == trained_run / "curves.png"


def test_predictor_loads_a_run_its_directory_or_its_package(trained_run: Path) -> None:
    image = next((trained_run.parent.parent / "data").rglob("*.png"))
    loaded: list[str | os.PathLike[str]] = [
        Run.load(trained_run),
        trained_run,
        str(trained_run),
        trained_run / "model",
    ]
    predictions = [Predictor.load(m, backend="torch").predict([image])[0] for m in loaded]
    assert all(p == predictions[0] for p in predictions) and predictions[0].label in COLOURS


def test_an_evaluation_shows_its_report_and_confusion_matrix(trained_run: Path, tmp_path: Path) -> None:
    ev = api.evaluate(Run.load(trained_run), out=tmp_path / "eval", workers=0)
    html = ev._repr_html_()
    assert f"{ev.metrics['accuracy']:.4f}" in html and "macro-F1" in html
    assert all(f"<td>{name}</td>" in html for name in COLOURS)  # the per-class report, one row per class
    assert _inline_png(html) == (tmp_path / "eval" / "confusion_matrix.png").read_bytes()
    assert [c["class"] for c in ev.per_class] == sorted(COLOURS)
    assert (
        sum(map(sum, ev.confusion_matrix)) == ev.metrics["images"]
        and ev.report == tmp_path / "eval" / "report.md"
    )
    assert f"accuracy {ev.metrics['accuracy']:.4f}" in repr(ev)


def test_predictions_are_rows_written_as_the_cli_writes_them(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "inputs"
    images = sorted((trained_run.parent.parent / "data" / "red").glob("*.png"))[:3]
    for image in images:
        (folder / image.name).parent.mkdir(parents=True, exist_ok=True)
        (folder / image.name).write_bytes(image.read_bytes())
    truncated_jpeg(folder / "broken.jpg")
    predictions = api.predict(trained_run, folder, top_k=2, workers=0)
    assert [Path(str(r["filename"])).name for r in predictions] == ["broken.jpg", *(i.name for i in images)]
    assert [r["filename"] for r in predictions.failed] == [str(folder / "broken.jpg")]
    assert predictions.files == 4 and repr(predictions).startswith(
        "<Predictions: 3 images predicted, 1 failed"
    )
    records = predictions.to_records()
    records[1]["label"] = "changed"
    assert records[1:] != list(predictions[1:]) and records[0] == predictions[0]  # a copy
    html = predictions._repr_html_()
    assert html.count("<tr>") == 5 and "<th>top2_label</th>" in html and "<th>error</th>" in html
    assert all(f"<td>{r['label']}</td>" in html for r in predictions[1:])

    predictions.to_csv(tmp_path / "api.csv")
    cli = [
        "predict",
        str(trained_run),
        str(folder),
        "--top-k",
        "2",
        "--workers",
        "0",
        "--out",
        str(tmp_path / "cli.csv"),
    ]
    assert main(cli) == 1  # the exit status: one file failed
    assert "3 images predicted, 1 failed" in capsys.readouterr().out
    assert (tmp_path / "api.csv").read_text() == (tmp_path / "cli.csv").read_text()
    with pytest.raises(ActiscopeError, match="--top-k must be at least 1, got 0"):
        api.predict(trained_run, folder, top_k=0)


def test_the_training_options_are_typed_keyword_arguments() -> None:
    """TrainArguments is options.py's options, by flat key, with their types (a path may be a Path)."""
    hints = get_type_hints(TrainArguments)
    expected = {
        _key(f): kind | os.PathLike[str] if _key(f) in PATH_OPTIONS else kind
        for _, f, kind in _option_fields()
        if _key(f) != "data"
    }
    assert hints == expected


def test_keyword_arguments_are_checked_as_python_checks_arguments(colour_data: Path, tmp_path: Path) -> None:
    with pytest.raises(
        TypeError,
        match="train_options\\(\\) got an unexpected keyword argument 'epoch'; did you mean 'epochs'\\?",
    ):
        api.train_options(colour_data, epoch=3)  # type: ignore[call-arg]  # the mistake under test
    with pytest.raises(TypeError, match="train_options\\(\\): image_size='96': expected int, got str"):
        api.train_options(colour_data, image_size="96")  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(TypeError, match="compare\\(\\) names and places each run itself: drop model"):
        api.compare(colour_data, ["simple-cnn", "resnet18"], model="resnet18")  # type: ignore[call-arg]  # under test
    with pytest.raises(ActiscopeError, match="--optimizer 'lion' is not one of"):
        api.train_options(colour_data, optimizer="lion")  # type: ignore[arg-type]  # the mistake under test
    sweep = np.arange(3, 4)  # NumPy's ints, as a hyperparameter sweep gives them
    options, _ = api.train_options(colour_data, epochs=sweep[0], lr=1, out=tmp_path / "runs", time_limit=None)  # type: ignore[arg-type]  # NumPy's int
    assert (options.optim.epochs, options.optim.lr, options.output.out) == (3, 1.0, str(tmp_path / "runs"))
    assert type(options.optim.epochs) is int and options.trainer.time_limit is None  # None: not given
    (tmp_path / "config.yaml").write_text(options.to_yaml())  # plain Python values, which YAML writes
    assert TrainOptions.from_yaml(tmp_path / "config.yaml") == options


def test_weights_auto_is_resolved_once_for_the_api_and_the_cli(
    colour_data: Path, offline_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options, notes = api.train_options(colour_data, model="mobilenet_v2", weights="auto", epochs=2)
    assert options.model.weights == "none" and options.optim.epochs == 2 and options.optim.lr == 2e-3
    assert notes[0].startswith(
        "training from scratch: no ImageNet weights for mobilenet_v2 here and no network"
    )
    assert notes[1].startswith("recipe: scratch from scratch (")
    argv = ["train", str(colour_data), "--model", "mobilenet_v2", "--weights", "auto", "--epochs", "2"]
    assert main([*argv, "--print-config"]) == 0
    printed = capsys.readouterr().out.splitlines(keepends=True)
    printed = [line for line in printed if not line.startswith("Downloading: ")]  # torch.hub's, trying
    assert "".join(printed) == "".join(f"# {line}\n" for line in notes) + options.to_yaml()


def test_an_inspection_shows_the_classes_and_saves_its_report(colour_data: Path, tmp_path: Path) -> None:
    inspection = api.inspect(colour_data, workers=1)
    assert repr(inspection).endswith("90 images, 3 classes; clean>") and not inspection.has_problems
    html = inspection._repr_html_()
    assert all(f"<td>{name}</td><td>30</td>" in html for name in COLOURS)
    assert [p.name for p in inspection.save(tmp_path / "report")] == ["inspect.json", "samples.png"]


def test_a_comparison_shows_its_leaderboard_and_plot(tmp_path: Path) -> None:
    from actiscope.evaluate.leaderboard import Row
    from actiscope.run import CompareDir
    from actiscope.workflows import Comparison

    Image.new("RGB", (8, 8)).save(CompareDir(tmp_path).plot)
    best = Row(
        "simple-cnn", "done", accuracy=0.9123, macro_f1=0.9, epochs=3, run=str(tmp_path / "runs" / "a")
    )
    comparison = api.Comparison(
        Comparison(tmp_path, [best, Row("resnet18", "failed: out of memory")], best, None)
    )
    html = comparison._repr_html_()
    assert "<td>0.9123</td>" in html and "<td>failed: out of memory</td>" in html
    assert _inline_png(html) == CompareDir(tmp_path).plot.read_bytes()
    assert repr(comparison) == f"<Comparison {tmp_path}: best simple-cnn of 2, 1 failed>"


def test_import_actiscope_imports_no_torch() -> None:
    """The root package finds the API's names on first use; neither imports torch (the CLI's parser and
    an ONNX prediction start without it)."""
    script = (
        "import sys, actiscope; before = ('torch' in sys.modules, 'actiscope.api' in sys.modules); "
        "actiscope.train, actiscope.Predictor, actiscope.api.evaluate; "
        "print(before, ('torch' in sys.modules, 'actiscope.api' in sys.modules), actiscope.train is actiscope.api.train)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "(False, False) (False, True) True"
