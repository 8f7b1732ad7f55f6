"""Faults outside the request's control answered in one line, not as a bare 500: the database gone
(503 with Retry-After: /readyz says the same, and the next request after it is back succeeds, since
Django opens a new connection once the old one failed) and a full disk (507)."""

from __future__ import annotations

import sys

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from actiscope.web.services import DISK_FULL

DATABASE_RETRY_AFTER_S = 5


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 view (`handler500`), for an exception raised anywhere: a view, DRF (which passes on
    what its handler does not know) or a middleware. Django hands this view no exception, but calls it
    inside its `except` block, so `sys.exc_info()` is the one that failed the request."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DatabaseError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"the database is unavailable ({first}); nothing was stored, try again shortly"
        return _answer(request, 503, message, retry_after=DATABASE_RETRY_AFTER_S)
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        where = f" writing {exc.filename}" if exc.filename else ""
        return _answer(request, 507, f"no space left on the server's disk{where}; nothing was stored")
    return defaults.server_error(request)


def _answer(request: HttpRequest, status: int, message: str, retry_after: int | None = None) -> HttpResponse:
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": message}, status=status)
    else:
        response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response
