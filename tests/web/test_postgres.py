"""The API tests once more, against a real PostgreSQL server (.ci/run starts one when it can)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

URL = os.environ.get("ACTISCOPE_TEST_DATABASE_URL", "")


@pytest.mark.skipif(
    not URL,
    reason="no PostgreSQL server: .ci/run starts one when the machine can (set ACTISCOPE_TEST_DATABASE_URL)",
)
def test_api_against_postgresql(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": URL, "ACTISCOPE_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/web/test_api.py"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
