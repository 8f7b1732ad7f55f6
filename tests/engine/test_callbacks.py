from __future__ import annotations

import io
import random
from types import SimpleNamespace

import numpy as np
import torch

from actiscope.engine.callbacks import AskToContinue, RNGState


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _trainer(epoch: int, max_epochs: int) -> SimpleNamespace:
    return SimpleNamespace(
        current_epoch=epoch,
        max_epochs=max_epochs,
        is_global_zero=True,
        should_stop=False,
        fit_loop=SimpleNamespace(max_epochs=max_epochs),
    )


def test_ask_stop_more_or_go_on() -> None:
    trainer = _trainer(1, 10)  # end of epoch 2
    AskToContinue(2, FakeTTY("s\n")).on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert trainer.should_stop

    trainer = _trainer(1, 10)
    AskToContinue(2, FakeTTY("5\n")).on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert trainer.fit_loop.max_epochs == 7 and not trainer.should_stop

    trainer = _trainer(1, 10)
    AskToContinue(2, FakeTTY("\n")).on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert trainer.fit_loop.max_epochs == 10 and not trainer.should_stop


def test_ask_is_ignored_without_a_terminal_and_between_checkpoints() -> None:
    trainer = _trainer(1, 10)
    AskToContinue(2, io.StringIO("s\n")).on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert not trainer.should_stop
    trainer = _trainer(2, 10)  # epoch 3: not a multiple of 2
    AskToContinue(2, FakeTTY("s\n")).on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert not trainer.should_stop


def test_rng_state_roundtrip() -> None:
    callback = RNGState()
    state = callback.state_dict()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    callback.load_state_dict(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
