"""`actiscope user add` and `actiscope user token`, in this process on the test database (the same data
directory as `serve` is shown end to end in tests/web/test_auth.py)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from actiscope.cli import main

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-passphrase"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `user` writes into the environment is undone after each test; no password is inherited."""
    monkeypatch.setenv("ACTISCOPE_SECRET_KEY", "tests-only")
    monkeypatch.delenv("ACTISCOPE_PASSWORD", raising=False)


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str, *, tty: bool = False) -> None:
    stream = io.StringIO(text)
    stream.isatty = lambda: tty  # type: ignore[method-assign]  # a terminal or a pipe, as the test needs
    monkeypatch.setattr("sys.stdin", stream)


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("actiscope: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_user_add_takes_the_password_from_stdin_the_environment_or_a_prompt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, f"{PASSWORD}\nthe rest is not read\n")
    assert main(["user", "add", "alice", "--password-stdin"]) == 0
    assert "user alice added" in capsys.readouterr().out
    monkeypatch.setenv("ACTISCOPE_PASSWORD", PASSWORD + "-bob")
    assert main(["user", "add", "bob"]) == 0
    monkeypatch.delenv("ACTISCOPE_PASSWORD")
    _stdin(monkeypatch, "", tty=True)
    answers = iter([PASSWORD + "-carol", PASSWORD + "-carol"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main(["user", "add", "carol"]) == 0
    users = {u.username: u for u in User.objects.all()}
    assert users["alice"].check_password(PASSWORD) and users["bob"].check_password(PASSWORD + "-bob")
    assert users["carol"].check_password(PASSWORD + "-carol") and not users["carol"].is_superuser


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["dave", "--password-stdin"], "12345678\n", "password refused: This password is too common. This password is entirely numeric."),
        (["dave", "--password-stdin"], "short\n", "password refused: This password is too short"),
        (["davidson", "--password-stdin"], "davidson1\n", "password refused: The password is too similar to the username."),
        (["dave", "--password-stdin"], "\n", "the password is empty"),
        (["da ve", "--password-stdin"], f"{PASSWORD}\n", "user name 'da ve': Enter a valid username."),
        (["dave"], "", "no password: type it at a terminal, or pass --password-stdin or $ACTISCOPE_PASSWORD"),
    ],
)  # fmt: skip  # one case per line reads as a table
def test_user_add_mistakes_are_one_line_and_add_nobody(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    _stdin(monkeypatch, stdin)
    assert message in _one_line_error(capsys, ["user", "add", *argv])
    assert not User.objects.exists()


def test_an_existing_user_or_differing_prompts_change_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    User.objects.create_user("alice", password=PASSWORD)
    _stdin(monkeypatch, "another-long-passphrase\n")
    error = _one_line_error(capsys, ["user", "add", "alice", "--password-stdin"])
    assert "user 'alice' exists already" in error and "changepassword alice" in error
    assert User.objects.get().check_password(PASSWORD)
    _stdin(monkeypatch, "", tty=True)
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert "the two passwords differ" in _one_line_error(capsys, ["user", "add", "bob"])
    assert User.objects.count() == 1


def test_user_token_is_made_once_and_replaced_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert "no user 'alice'; create one with `actiscope user add alice`" in _one_line_error(
        capsys, ["user", "token", "alice"]
    )
    User.objects.create_user("alice", password=PASSWORD)
    assert main(["user", "token", "alice"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["user", "token", "alice"]) == 0
    assert capsys.readouterr().out.strip() == first == Token.objects.get().key
    assert main(["user", "token", "alice", "--new"]) == 0
    second = capsys.readouterr().out.strip()
    assert second != first and list(Token.objects.values_list("key", flat=True)) == [second]
