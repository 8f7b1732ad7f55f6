"""Settings for the test suite: the base settings with a fixed key, no debug and local hosts only, so
that no test depends on, or writes, a data directory's secret."""

from __future__ import annotations

from actiscope.web.settings.base import *  # noqa: F403 - a settings module is the base one plus its own

SECRET_KEY = "actiscope-tests-only-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# fast logins (production keeps PBKDF2); the loopback defaults whatever the shell says (test_auth.py
# turns them on)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EXPOSED = OPEN_READ = False
