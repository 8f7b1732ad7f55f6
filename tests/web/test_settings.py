"""The settings modules do no I/O at import; the entry points prepare the data directory and its key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from actiscope.web.setup import PRODUCTION_SETTINGS, SECRET_KEY_VARIABLE, prepare_environment


def test_production_settings_import_touches_nothing_and_read_the_environment(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if k != SECRET_KEY_VARIABLE},
        "ACTISCOPE_DATA_DIR": str(data),
        "ACTISCOPE_INFERENCE_THREADS": "3",
        "ACTISCOPE_MAX_CLIP_SECONDS": "7",
    }
    code = (
        f"import {PRODUCTION_SETTINGS} as s; "
        "print(s.DATA_DIR, s.INFERENCE_THREADS, s.VIDEO_LIMITS.max_seconds, repr(s.SECRET_KEY))"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(data), "3", "7.0", "''"]
    assert not data.exists()  # no folder, no secret key file, no database made at import


def test_prepare_environment_makes_one_private_key_per_data_directory(tmp_path: Path) -> None:
    environ = {"ACTISCOPE_DATA_DIR": str(tmp_path / "data")}
    prepare_environment(environ)
    key_file = tmp_path / "data" / "secret_key"
    assert environ["DJANGO_SETTINGS_MODULE"] == PRODUCTION_SETTINGS
    assert (
        environ[SECRET_KEY_VARIABLE] == key_file.read_text().strip()
        and len(environ[SECRET_KEY_VARIABLE]) > 50
    )
    assert key_file.stat().st_mode & 0o777 == 0o600
    again = {"ACTISCOPE_DATA_DIR": str(tmp_path / "data")}
    prepare_environment(again)
    assert again[SECRET_KEY_VARIABLE] == environ[SECRET_KEY_VARIABLE]  # generated once, then kept
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret_key"]  # no temporary left

    given = {"ACTISCOPE_DATA_DIR": str(tmp_path / "other"), SECRET_KEY_VARIABLE: "from-the-operator"}
    prepare_environment(given)
    assert (
        given[SECRET_KEY_VARIABLE] == "from-the-operator" and not (tmp_path / "other" / "secret_key").exists()
    )


def test_the_tests_run_on_the_test_settings_with_a_fixed_key() -> None:
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "actiscope.web.settings.test"
    assert settings.SECRET_KEY.startswith("actiscope-tests-only") and not settings.DEBUG
