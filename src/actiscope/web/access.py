"""Who may do what, decided in one place for the pages (a middleware) and the API (a DRF permission).

On a loopback address (`settings.EXPOSED` false) everyone may do everything, as on a laptop. Exposed,
every state change (any POST, PUT, PATCH or DELETE that is not a prediction, including views added
later) needs a logged-in user; reading and predicting need one too unless `settings.OPEN_READ` is set.
A view that only predicts says so with `@predicts` (pages) or `predicts = True` (API views).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import views as auth
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from rest_framework.throttling import BaseThrottle

log = logging.getLogger(__name__)
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


class LoginView(auth.LoginView):
    """Django's login page with what it lacks: a limit on failed logins, so that a password cannot be
    guessed by trying many. After settings.LOGIN_FAILURES failures for one user name (four times as many
    from one client address, the address as the API's throttle sees it) within LOGIN_LOCKOUT_S seconds,
    that name or address is refused, right password or not, with 429, Retry-After and one line, until
    the lockout has passed since its last failure. A login that succeeds clears its name's count. The
    counts live in Django's cache: per worker process with the default local-memory cache."""

    template_name = "actiscope/login.html"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        limits = _failure_limits(request)
        if any((cache.get(key) or 0) >= limit for _, key, limit in limits):
            minutes = max(1, round(settings.LOGIN_LOCKOUT_S / 60))
            refused = (
                f"too many failed logins for this user or from this address; try again in {minutes} minutes"
            )
            # an unbound form: validating the posted one would try the password
            context = self.get_context_data(form=self.get_form_class()(request), refused=refused)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(settings.LOGIN_LOCKOUT_S)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        for who, key, limit in _failure_limits(self.request):
            failures = (cache.get(key) or 0) + 1
            cache.set(key, failures, timeout=settings.LOGIN_LOCKOUT_S)
            if failures == limit:
                log.warning(
                    "login: %s refused for %d s after %d failures", who, settings.LOGIN_LOCKOUT_S, limit
                )
        return super().form_invalid(form)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        cache.delete(_failure_limits(self.request)[0][1])
        return super().form_valid(form)


def _failure_limits(request: HttpRequest) -> list[tuple[str, str, int]]:
    """The failure counters a login request counts against, its user name's and then its address's:
    (who, for the log; cache key; limit)."""
    name = str(request.POST.get("username", "")).strip().lower()
    address = BaseThrottle().get_ident(request)  # type: ignore[arg-type]  # reads only request.META
    return [  # keys hashed: any text a client sends makes a valid key for every cache backend
        (f"user {name[:150]!r}", f"login-failures:user:{_digest(name)}", settings.LOGIN_FAILURES),
        (f"address {address}", f"login-failures:address:{_digest(address)}", 4 * settings.LOGIN_FAILURES),
    ]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
