from __future__ import annotations

import io
import random
from types import SimpleNamespace

import numpy as np
import torch

from actiscope.engine.callbacks import AskToContinue, RNGState, warmed_ema


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


def test_the_moving_average_warms_up_then_keeps_its_decay() -> None:
    """--ema: early updates weigh the new weights heavily (a short run's average leaves the random start),
    later ones keep the decay asked for."""
    average = warmed_ema(0.998)
    kept, new = torch.zeros(3), torch.ones(3)
    after_one = average(kept, new, torch.tensor(1))
    assert torch.allclose(after_one, torch.full((3,), 1 - 2 / 11))  # kept 2/11 of the old average
    late = average(kept, new, torch.tensor(10_000))
    assert torch.allclose(late, torch.full((3,), 1 - 0.998))
    steps = kept
    for n in range(1, 300):  # 300 updates from 0 towards 1: a fixed 0.998 would be at 1 - 0.998**299 = 0.45
        steps = average(steps, new, torch.tensor(n))
    assert steps.min() > 0.9
