"""The CI script's throwaway PostgreSQL server: started and, whatever the outcome, stopped again."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "postgres.sh"


def _running(directory: Path) -> bool:
    found = subprocess.run(["pgrep", "-f", f"postgres -D {directory}/data"], capture_output=True, text=True)
    return bool(found.stdout.strip())


def test_the_server_is_stopped_when_the_script_that_started_it_fails() -> None:
    # under /tmp as .ci/run does: pytest's tmp_path is private to root, and the server may run as postgres
    directory = Path(tempfile.mkdtemp(prefix="actiscope-pg-test.", dir="/tmp"))
    # the lines .ci/run uses, in a script that fails after starting the server
    script = f"""
    trap 'bash {SCRIPT} stop {directory}' EXIT
    url=$(bash {SCRIPT} start {directory})
    [ -n "$url" ] || exit 42
    exit 3
    """
    code = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120).returncode
    if code == 42:
        pytest.skip("PostgreSQL cannot be started on this machine")
    assert code == 3
    deadline = time.monotonic() + 10
    while _running(directory) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(directory), "the throwaway PostgreSQL server outlived the script"
    assert not directory.exists()
