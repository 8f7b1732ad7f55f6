"""Settings shared by production and the tests, read from the environment (twelve-factor style). The
environment is read here and nowhere else in the web app; services take these values from settings.

ACTISCOPE_DATA_DIR   database, uploads, secret key (default ~/.local/share/actiscope)
ACTISCOPE_RUNS       the runs the dashboard shows (default ./runs)
ACTISCOPE_MODEL      the model package or run to serve (default: the active or newest run)
DATABASE_URL         e.g. postgres://user:pass@host/db (default: SQLite in the data directory)
ACTISCOPE_MAX_UPLOAD_MB (10), ACTISCOPE_MAX_CLIP_MB (50; clip length, size and frame limits:
ACTISCOPE_MAX_CLIP_SECONDS/_SIDE/_FRAMES), ACTISCOPE_MAX_FILES (16),
ACTISCOPE_EXPOSED=1  reachable from other machines (`actiscope serve` sets it for a non-loopback --host; set
                     it yourself behind a reverse proxy on this machine): every change needs a logged-in
                     user (pages) or a token (API), and so do reading and predicting unless
ACTISCOPE_OPEN_READ=1 (`serve --open`) opens them to everyone (web/access.py has the policy)
ACTISCOPE_THROTTLE    requests per minute per client for the API (default 600)
ACTISCOPE_LOGIN_FAILURES (5), _LOCKOUT_S (900)  failed logins per user name (four times as many per
                     client address) before the login page refuses that user or address for the lockout
ACTISCOPE_BACKEND    auto (default), torch, onnx or onnx-int8: how served packages run (`serve --backend`)
ACTISCOPE_INFERENCE_THREADS  threads per inference session (0: the library's default; `actiscope serve` sets
                     cores / workers, so that worker processes do not fight over cores)
ACTISCOPE_PREDICT_SLOTS (2), _QUEUE (8), _WAIT_S (10)  per worker process: predictions at once, how many
                     more may wait and how long, before one is answered 503 + Retry-After (web/admission.py)
Production adds the secret key, DEBUG, the allowed hosts and HTTPS (see production.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from actiscope.data.video import VideoLimits
from actiscope.web.admission import Capacity
from actiscope.web.setup import data_dir

HERE = Path(__file__).resolve().parents[1]  # the web app's package: templates/ and static/


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


DATA_DIR = data_dir(os.environ)
RUNS_DIR = Path(os.environ.get("ACTISCOPE_RUNS", "runs")).expanduser()
ACTISCOPE_MODEL = os.environ.get("ACTISCOPE_MODEL") or None
MAX_UPLOAD_BYTES = int(float(os.environ.get("ACTISCOPE_MAX_UPLOAD_MB", "10")) * 1024 * 1024)
MAX_FILES = int(os.environ.get("ACTISCOPE_MAX_FILES", "16"))
MAX_CLIP_BYTES = int(float(os.environ.get("ACTISCOPE_MAX_CLIP_MB", "50")) * 1024 * 1024)
VIDEO_LIMITS = VideoLimits.from_env()
EXPOSED = flag("ACTISCOPE_EXPOSED")
OPEN_READ = flag("ACTISCOPE_OPEN_READ")
LOGIN_FAILURES = int(os.environ.get("ACTISCOPE_LOGIN_FAILURES", "5"))
LOGIN_LOCKOUT_S = int(os.environ.get("ACTISCOPE_LOGIN_LOCKOUT_S", "900"))
_threads = os.environ.get("ACTISCOPE_INFERENCE_THREADS", "0")
INFERENCE_THREADS = int(_threads) if _threads.isdigit() else 0
INFERENCE_BACKEND = os.environ.get("ACTISCOPE_BACKEND") or "auto"
PREDICT_CAPACITY = Capacity.from_environ(os.environ)

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "actiscope.web.classify",
    "actiscope.web.dashboard",
    "actiscope.web.api",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "actiscope.web.access.LoginWhenExposed",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "actiscope.web.urls"
WSGI_APPLICATION = "actiscope.web.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "actiscope.web.access.context",
            ]
        },
    }
]


def _database() -> dict[str, Any]:
    """DATABASE_URL, else SQLite in the data directory (which `web.setup.prepare_environment` creates)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        # each thread keeps its connection a minute; one left over from before a database restart is
        # checked before its next request and replaced, rather than failing that request
        return dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "actiscope.sqlite3",
        "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

STATIC_URL = "/static/"
STATICFILES_DIRS = [HERE / "static"]
STATIC_ROOT = DATA_DIR / "static"
WHITENOISE_USE_FINDERS = True  # serve app static files straight from the package, no collectstatic
MEDIA_ROOT = DATA_DIR / "uploads"
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_FILES + 1  # our own check names the limit; Django's is a backstop

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Users: `actiscope user add NAME` (web/users.py) or `python -m actiscope.web.manage createsuperuser`.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = LOGOUT_REDIRECT_URL = "classify"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

POLICY = "actiscope.web.api.policy"
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # a token first, so that a refused call answers 401 with `WWW-Authenticate: Token`; the session is
    # for the pages' own scripts (live.js), with CSRF checked as on the pages
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [f"{POLICY}.LoginWhenExposed"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [f"{POLICY}.ClientThrottle"],
    "DEFAULT_THROTTLE_RATES": {"client": f"{int(os.environ.get('ACTISCOPE_THROTTLE', '600'))}/min"},
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": f"{POLICY}.one_line_errors",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "actiscope API",
    "DESCRIPTION": "Recognise human actions in images.",
    "VERSION": "1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": [f"{POLICY}.LoginWhenExposed"],  # the schema and docs are reads like the rest
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
