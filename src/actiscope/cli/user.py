"""`actiscope user add` and `actiscope user token`: who may change things on an exposed server."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser
from actiscope.errors import ActiscopeError

PASSWORD_VARIABLE = "ACTISCOPE_PASSWORD"
DATA_DIR_HELP = "the data directory `actiscope serve` uses (default: $ACTISCOPE_DATA_DIR)"


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    user = sub.add_parser("user", help="users who may change things on an exposed server; API tokens")
    user_sub = user.add_subparsers(dest="user_command", required=True, parser_class=ArgumentParser)

    add = user_sub.add_parser("add", help="a user who may log in (password from a prompt, stdin or env)")
    add.add_argument("name", help="the new user's name")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read the password from the first line of stdin (else ${PASSWORD_VARIABLE}, else a prompt)",
    )
    add.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    add.set_defaults(handler=run_add)

    token = user_sub.add_parser("token", help="print the user's API token, made on first use")
    token.add_argument("name", help="the user whose API token to print")
    token.add_argument("--new", action="store_true", help="replace the token; the old one stops working")
    token.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    token.set_defaults(handler=run_token)


def _open(data_dir: Path | None) -> None:
    """The same data directory, settings and database as `actiscope serve`."""
    from actiscope.web.setup import open_database, prepare_environment

    if data_dir is not None:
        os.environ["ACTISCOPE_DATA_DIR"] = str(data_dir.expanduser().resolve())
    prepare_environment(os.environ)
    open_database()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get(PASSWORD_VARIABLE):
        return os.environ[PASSWORD_VARIABLE]
    if not sys.stdin.isatty():
        raise ActiscopeError(
            f"no password: type it at a terminal, or pass --password-stdin or ${PASSWORD_VARIABLE}"
        )
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ActiscopeError("the two passwords differ; nothing was changed")
    return first


def run_add(args: argparse.Namespace) -> int:
    password = _password(args.password_stdin)  # before the database: a typo costs no migration
    _open(args.data_dir)
    from actiscope.web.users import add_user

    add_user(args.name, password)
    print(f"user {args.name} added: log in on the pages, or `actiscope user token {args.name}` for the API")
    return 0


def run_token(args: argparse.Namespace) -> int:
    _open(args.data_dir)
    from actiscope.web.users import api_token

    print(api_token(args.name, new=args.new))
    return 0
