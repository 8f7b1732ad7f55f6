"""A gunicorn configuration for the fault tests, given through the environment
(GUNICORN_CMD_ARGS="--config python:tests.web.fault_hooks"), so that `actiscope serve` runs unchanged.

In each worker it adds holds that stop a request at a known point until the test lets it go, and
markers that say where the worker is, all files in $ACTISCOPE_TEST_HOLDS:
  hold-predict     while it exists, a prediction waits before the model runs (`at-predict-*` says one is there)
  hold-store       while it exists, an upload written whole under its temporary name waits before its
                   rename (`at-store-*`)
  draining-<pid>   the worker has stopped accepting connections after a SIGTERM
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HOLD_LIMIT_S = 120  # a hold the test forgot to lift ends on its own


def _hold(name: str) -> None:
    holds = Path(os.environ["ACTISCOPE_TEST_HOLDS"])
    if not (holds / f"hold-{name}").exists():
        return
    (holds / f"at-{name}-{os.getpid()}-{uuid.uuid4().hex}").touch()
    deadline = time.monotonic() + HOLD_LIMIT_S
    while (holds / f"hold-{name}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def post_worker_init(worker: Any) -> None:
    from actiscope.predict import Predictor
    from actiscope.web import services

    predict = Predictor.predict

    def held_predict(self: Predictor, *args: Any, **kwargs: Any) -> Any:
        _hold("predict")
        return predict(self, *args, **kwargs)

    atomic_output = services.atomic_output

    @contextmanager
    def held_output(path: Path) -> Iterator[Path]:
        with atomic_output(path) as partial:
            yield partial
            _hold("store")  # the caller has written `partial`; it is not yet renamed to `path`

    Predictor.predict = held_predict  # type: ignore[method-assign]  # the hold, in this worker only
    services.atomic_output = held_output  # type: ignore[assignment]  # the same
    accept = getattr(worker, "set_accept_enabled", None)  # the gthread worker's switch (gunicorn 27)
    if accept is not None:

        def traced(enabled: bool) -> None:
            accept(enabled)
            if not enabled and not worker.alive:
                (Path(os.environ["ACTISCOPE_TEST_HOLDS"]) / f"draining-{os.getpid()}").touch()

        worker.set_accept_enabled = traced
