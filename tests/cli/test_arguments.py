"""The parser every verb shares: a typo in an option or a choice is one line, exit status 2, and names
the closest valid ones; choice lists are the library's own."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actiscope.cli import main


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "DATA", "--lr-rate", "1"], "actiscope train: error: unknown option --lr-rate; did you mean --lr?"),
        (["train", "DATA", "--lr-rate=1"], "unknown option --lr-rate; did you mean --lr?"),
        (["train", "DATA", "--batchsize", "8"], "unknown option --batchsize; did you mean --batch-size?"),
        (["train", "DATA", "--no-cahce"], "unknown option --no-cahce; did you mean --no-cache?"),
        (["compare", "DATA", "--models", "a,b", "--selct", "accuracy"], "did you mean --select?"),
        (["data", "split", "DATA", "--out", "s.json", "--sed", "1"], "actiscope data split: error: unknown option --sed; did you mean --seed?"),
        (["--verbsoe", "models"], "actiscope: error: unknown option --verbsoe; did you mean --verbose?"),
    ],
)  # fmt: skip  # one case per line reads as a table
def test_unknown_option_names_the_closest(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in _usage_error(capsys, *argv)


def test_unknown_option_without_a_close_one(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, "train", "DATA", "--zzzz")
    assert "unknown option --zzzz (see --help)" in err and "did you mean" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "DATA", "--optimizer", "adamm"], "--optimizer 'adamm' is not one of: adamw, adam, adamax, sgd; did you mean adam or adamw?"),
        (["compare", "DATA", "--models", "a", "--augment", "strnog"], "--augment 'strnog' is not one of: none, light, standard, strong; did you mean strong?"),
        (["predict", "MODEL", "x.png", "--backend", "onxx"], "did you mean onnx?"),
        (["models", "--kind", "vidoe"], "--kind 'vidoe' is not one of: image, video; did you mean video?"),
        (["trian"], "command 'trian' is not one of: data, models, weights, train,"),
        (["trian"], "; did you mean train?"),
        (["data", "inpsect", "DATA"], "actiscope data: error: data command 'inpsect' is not one of: inspect, split, audit; did you mean inspect?"),
        (["train", "DATA", "--optimizer", "lion"], "--optimizer 'lion' is not one of: adamw, adam, adamax, sgd (see --help)"),
    ],
)  # fmt: skip  # one case per line reads as a table
def test_bad_choice_names_the_closest(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in _usage_error(capsys, *argv)


def test_choices_are_the_librarys(capsys: pytest.CaptureFixture[str]) -> None:
    from actiscope import options
    from actiscope.data.formats import READERS
    from actiscope.evaluate.leaderboard import SELECT
    from actiscope.explain import METHODS
    from actiscope.export import FORMATS
    from actiscope.predict import BACKENDS

    cases = [
        (["predict", "M", "x.png", "--backend", "?"], BACKENDS),
        (["evaluate", "M", "--backend", "?"], BACKENDS),
        (["compare", "D", "--models", "a", "--select", "?"], SELECT),
        (["explain", "M", "x.png", "--method", "?"], METHODS),
        (["export", "M", "--format", "?"], FORMATS),
        (["data", "inspect", "D", "--format", "?"], sorted(READERS)),
        (["evaluate", "M", "--format", "?"], sorted(READERS)),
        (["train", "D", "--scheduler", "?"], options.SCHEDULERS),
        (["train", "D", "--precision", "?"], options.PRECISIONS),
        (["compare", "D", "--models", "a", "--export", "?"], options.EXPORTS),
    ]
    for argv, choices in cases:
        assert f"'?' is not one of: {', '.join(choices)} (see --help)" in _usage_error(capsys, *argv), argv


def test_building_the_parser_imports_no_library_that_needs_torch() -> None:
    """The choice lists of explain, export and compare live in modules that import torch: the parser
    reads them only when a value is checked or help is shown."""
    script = (
        "import sys; from actiscope.cli import build_parser; "
        "build_parser().parse_args(['models']); build_parser().parse_args(['predict', 'M', 'x.png']); "
        "print(sorted(m for m in ('torch', 'actiscope.predict', 'actiscope.explain') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_negative_number_is_a_value_not_an_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", str(tmp_path / "nowhere"), "--lr", "-1", "--seed", "-3"])
    assert code == 2 and "--lr must be positive, got -1.0" in capsys.readouterr().err


def test_every_option_of_every_command_has_help_and_shows_its_default() -> None:
    from actiscope.cli import build_parser
    from actiscope.cli.arguments import HelpFormatter

    def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
                yield path, action

    shown = HelpFormatter("actiscope")
    found = list(walk(build_parser(), "actiscope"))
    assert len(found) > 150  # every command's options, the training options of train, compare and tune too
    for path, action in found:
        text = shown._get_help_string(action)
        assert text, f"{path} {action.option_strings or action.dest}: no help"
        if action.default not in (None, False, argparse.SUPPRESS):
            assert "default" in text, (
                f"{path} {action.option_strings}: the default {action.default!r} is not shown"
            )
