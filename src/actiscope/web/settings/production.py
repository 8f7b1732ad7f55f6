"""Settings for `actiscope serve` (the default DJANGO_SETTINGS_MODULE of every entry point): the base
settings plus what a deployment decides, read from the environment.

ACTISCOPE_SECRET_KEY  the key (default: the data directory's own, which `web.setup.prepare_environment`
                      generates once and passes on in this variable)
ACTISCOPE_ALLOWED_HOSTS (comma-separated; default 127.0.0.1,localhost), ACTISCOPE_DEBUG=1,
ACTISCOPE_HTTPS=1     behind TLS: secure cookies, HSTS, redirect to https (what `check --deploy` asks), the
                      proxy's X-Forwarded-Proto trusted; the probes stay on plain http for load balancers
"""

from __future__ import annotations

import os

from actiscope.web.settings.base import *  # noqa: F403 - a settings module is the base one plus its own
from actiscope.web.settings.base import flag
from actiscope.web.setup import SECRET_KEY_VARIABLE

# Empty when no entry point prepared it: Django then refuses, on first use, to run without a key.
SECRET_KEY = os.environ.get(SECRET_KEY_VARIABLE, "")
DEBUG = flag("ACTISCOPE_DEBUG")
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ACTISCOPE_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if h.strip()
]

HTTPS = flag("ACTISCOPE_HTTPS")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz)$"]
