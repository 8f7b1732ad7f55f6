"""The people who may change things on an exposed server: Django's users (the pages' logins) and DRF's
tokens (the API's). Called once Django is set up (`setup.open_database`), by `actiscope user` and `serve`.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from actiscope.errors import ActiscopeError


class UserError(ActiscopeError):
    """A user that cannot be made as asked, or is not there."""


def has_users() -> bool:
    """Whether anyone can log in (or hold a token) yet."""
    return bool(get_user_model().objects.filter(is_active=True).exists())


def add_user(name: str, password: str) -> None:
    """A new user who may log in and make changes; the name and password are checked by Django's own
    validators (settings.AUTH_PASSWORD_VALIDATORS)."""
    User = get_user_model()  # settings keep Django's own user model
    try:
        User.username_validator(name)
    except ValidationError as exc:
        raise UserError(f"user name {name!r}: {' '.join(exc.messages)}") from None
    if User.objects.filter(username=name).exists():
        raise UserError(
            f"user {name!r} exists already; choose another name, or change its password with "
            f"`python -m actiscope.web.manage changepassword {name}`"
        )
    if not password:
        raise UserError("the password is empty; give one at the prompt, on stdin or in ACTISCOPE_PASSWORD")
    try:
        validate_password(password, User(username=name))
    except ValidationError as exc:
        raise UserError(f"password refused: {' '.join(exc.messages)}") from None
    User.objects.create_user(username=name, password=password)


def api_token(name: str, *, new: bool = False) -> str:
    """The user's API token (`Authorization: Token KEY`), made on first use; `new` replaces it, so that
    the old one stops working."""
    from rest_framework.authtoken.models import Token  # a model: importable once Django is set up

    user = get_user_model().objects.filter(username=name).first()
    if user is None:
        raise UserError(f"no user {name!r}; create one with `actiscope user add {name}`")
    if new:
        Token.objects.filter(user=user).delete()
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)
