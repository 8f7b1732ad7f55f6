"""Who may do what, decided in one place for the pages (a middleware) and the API (a DRF permission).

On a loopback address (`settings.EXPOSED` false) everyone may do everything, as on a laptop. Exposed,
every state change (any POST, PUT, PATCH or DELETE that is not a prediction, including views added
later) needs a logged-in user; reading and predicting need one too unless `settings.OPEN_READ` is set.
A view that only predicts says so with `@predicts` (pages) or `predicts = True` (API views).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
PREDICTS = "actiscope_predicts"  # the attribute `@predicts` sets on a view function

View = TypeVar("View", bound=Callable[..., Any])


def predicts(view: View) -> View:
    """Mark a page whose POST predicts (and stores the prediction) rather than changes what is served."""
    setattr(view, PREDICTS, True)
    return view


def needs_login(method: str, *, predicting: bool) -> bool:
    """Whether an anonymous request with this method may not go ahead (the whole policy)."""
    if not settings.EXPOSED:
        return False
    if method in SAFE_METHODS or predicting:
        return not settings.OPEN_READ
    return True


def same_site(request: HttpRequest, target: str) -> bool:
    """Whether a redirect target stays on this site (the guard against open redirects)."""
    return bool(target) and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


class LoginWhenExposed(LoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware, applied to the requests `needs_login` names. Views marked
    `login_not_required` (the login page, the probes) and DRF's views (their permission decides) pass."""

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        if not needs_login(request.method or "GET", predicting=getattr(view_func, PREDICTS, False)):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(
        self, request: HttpRequest, view_func: Callable[..., Any]
    ) -> HttpResponseRedirect:
        if request.method in SAFE_METHODS:
            return super().handle_no_permission(request, view_func)
        # A form's POST cannot be replayed after logging in (the target only takes POST): come back to
        # the page the form was on instead, when that page is on this site.
        back = request.headers.get("Referer", "")
        parts = urlsplit(back)
        path = (parts.path + (f"?{parts.query}" if parts.query else "")) if same_site(request, back) else ""
        return redirect_to_login(
            path or resolve_url("classify"),
            resolve_url(self.get_login_url(view_func)),
            self.get_redirect_field_name(view_func),
        )


def context(request: HttpRequest) -> dict[str, Any]:
    """For the templates: whether logins matter here (the header shows log in / log out only then)."""
    return {"exposed": settings.EXPOSED}
