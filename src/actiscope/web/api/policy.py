"""API policies named in settings (kept apart from the views, which DRF's settings would import too early)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from actiscope.web.services import ServiceError


class TokenWhenRequired(BasePermission):
    """With ACTISCOPE_API_TOKENS=1 every API call needs a token (`python -m actiscope.web.manage
    drf_create_token USER`); otherwise the API is open, like the pages."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not settings.API_TOKENS:
            return True
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_authenticated)


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
