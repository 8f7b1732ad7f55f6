"""What the command line prints besides results: other libraries' warnings and tips only with -v, and
progress as a bar on a terminal or as plain lines in a log file."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator

import pytest

from actiscope.cli import _log_to_stderr, _third_parties
from actiscope.cli.progress import Progress
from tests.conftest import Records


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Every message that reaches the `actiscope` or `lightning.pytorch` loggers."""
    handler, ours = Records(), logging.getLogger("actiscope")
    loggers = [ours, logging.getLogger("lightning.pytorch")]
    level = ours.level
    ours.setLevel(logging.INFO)  # as the CLI sets it
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.messages
    for logger in loggers:
        logger.removeHandler(handler)
    ours.setLevel(level)


def _lightning_noise() -> None:
    """What Lightning itself says around a run: its tips, and a warning raised inside its code."""
    import lightning as L
    from lightning.pytorch.utilities.data import has_len_all_ranks
    from torch.utils.data import DataLoader

    trainer = L.Trainer(
        logger=False, accelerator="cpu", enable_progress_bar=False, enable_checkpointing=False
    )
    has_len_all_ranks(DataLoader([]), trainer.strategy)  # "Total length of `DataLoader` across ranks is zero"


@pytest.mark.parametrize("verbose", [False, True])
def test_other_libraries_speak_only_with_verbose(verbose: bool, capsys: pytest.CaptureFixture[str]) -> None:
    _log_to_stderr(verbose=verbose)  # before `logged` is attached: it removes the handlers it finds
    lightning, logged = logging.getLogger("lightning.pytorch"), Records()
    lightning.addHandler(logged)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _third_parties(verbose=verbose):
            _lightning_noise()
            logging.getLogger("actiscope.engine.fit").warning("our own warning")
            warnings.warn_explicit(
                "our own deprecation", DeprecationWarning, "fit.py", 1, "actiscope.engine.fit"
            )
    lightning.removeHandler(logged)
    theirs = [str(w.message) for w in caught if "our own" not in str(w.message)]
    tips = [m for m in logged.messages if "litlogger" in m or "GPU available" in m]
    assert bool(tips) == verbose and any("Total length of `DataLoader`" in t for t in theirs) == verbose
    assert "our own warning" in capsys.readouterr().err
    assert [str(w.message) for w in caught if "our own" in str(w.message)] == ["our own deprecation"]
    assert logging.getLogger("lightning.pytorch.utilities.rank_zero").level == logging.NOTSET  # as it was


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_without_a_terminal_is_a_line_every_few_seconds(logged: list[str]) -> None:
    clock, stream = Clock(), io.StringIO()  # a StringIO is no terminal
    with Progress("evaluate", "image", stream=stream, every_s=5, clock=clock) as progress:
        for done, at in ((10, 101.0), (20, 104.0), (50, 105.0), (60, 107.0), (100, 110.0)):
            clock.now = at
            progress(done, 200)
    assert logged == [
        "evaluate: 50/200 images (25%), 10.0 images/s, about 15 s left",
        "evaluate: 100/200 images (50%), 10.0 images/s, about 10 s left",
    ]
    assert stream.getvalue() == ""


def test_progress_on_a_terminal_is_a_bar(logged: list[str]) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, clock = Terminal(), Clock()
    with Progress("predict", "image", 3, stream=terminal, every_s=0, clock=clock) as progress:
        for _ in range(3):
            clock.now += 10
            progress.update(1)
    drawn = terminal.getvalue()  # tqdm's bar, redrawn in place and cleared at the end; no log lines
    assert drawn.startswith("\rpredict:") and "/3 [" in drawn and drawn.endswith("\r") and logged == []
