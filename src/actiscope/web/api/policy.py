"""API policies named in settings (kept apart from the views, which DRF's settings would import too early)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from actiscope.web.access import needs_login
from actiscope.web.services import ServiceError


class LoginWhenExposed(BasePermission):
    """The API's side of `access.needs_login`: exposed, a change needs a user (a token, or the session of
    a user logged in on the pages), and so do reads and predictions unless they are open."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return True
        return not needs_login(request.method or "GET", predicting=getattr(view, "predicts", False))


class ClientThrottle(SimpleRateThrottle):
    """Requests per minute per client (its token's user, else its address), so one cannot starve the rest."""

    scope = "client"

    def get_cache_key(self, request: Request, view: Any) -> str:
        user = getattr(request, "user", None)
        ident = (
            f"user-{user.pk}"
            if user is not None and getattr(user, "is_authenticated", False)
            else self.get_ident(request)
        )
        return self.cache_format % {"scope": self.scope, "ident": ident}


def one_line_errors(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as {"error": "one line"} with the right status."""
    if isinstance(exc, ServiceError):
        retry = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return Response({"error": exc.message}, status=exc.status, headers=retry)
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, APIException) else response.data
    response.data = {"error": _flatten(detail)}
    return response


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(
            f"{key}: {_flatten(value)}" if key != "detail" else _flatten(value)
            for key, value in detail.items()
        )
    if isinstance(detail, list):
        return "; ".join(_flatten(v) for v in detail)
    return " ".join(str(detail).split())
