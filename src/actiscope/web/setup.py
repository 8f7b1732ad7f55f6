"""What a serving process prepares before Django starts, so that the settings modules do no I/O at import.

`actiscope serve`, `actiscope user`, `python -m actiscope.web.manage` and the WSGI entry point call
`prepare_environment`: it creates the data directory and, unless ACTISCOPE_SECRET_KEY is given, the data
directory's secret key (generated once, readable by its owner only), and hands the key to the settings
through the environment. `serve` and `user` then `open_database`, so that both work on the same one.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import tempfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from actiscope.errors import ActiscopeError

PRODUCTION_SETTINGS = "actiscope.web.settings.production"
SECRET_KEY_VARIABLE = "ACTISCOPE_SECRET_KEY"


class DatabaseUnusable(ActiscopeError):
    """The database the settings name cannot be opened or migrated."""


def data_dir(environ: Mapping[str, str]) -> Path:
    """ACTISCOPE_DATA_DIR, else ~/.local/share/actiscope: the database, uploads and secret key."""
    return Path(environ.get("ACTISCOPE_DATA_DIR", "~/.local/share/actiscope")).expanduser()


def secret_key(directory: Path) -> str:
    """The data directory's secret key, generated on first use and readable by its owner only."""
    path = directory / "secret_key"
    if not path.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".secret_key.")  # mode 0600
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
        try:
            os.link(tmp, path)  # whole or absent; if another process linked its key first, keep theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def prepare_environment(environ: MutableMapping[str, str]) -> None:
    """Ready `environ` (normally os.environ) for a process that runs the web app: the production settings
    unless others are chosen, the data directory made, and its secret key unless one is given."""
    environ.setdefault("DJANGO_SETTINGS_MODULE", PRODUCTION_SETTINGS)
    directory = data_dir(environ)
    directory.mkdir(parents=True, exist_ok=True)
    if not environ.get(SECRET_KEY_VARIABLE):
        environ[SECRET_KEY_VARIABLE] = secret_key(directory)


def open_database() -> None:
    """Set Django up from the prepared environment (settings are read here, not at import) and apply the
    migrations; an unusable database is one line."""
    import django
    from django.core.management import call_command
    from django.db.utils import Error as DatabaseError

    try:
        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
    except (DatabaseError, sqlite3.Error, OSError) as exc:
        raise DatabaseUnusable(
            f"the database is not usable: {str(exc).splitlines()[0]}; check DATABASE_URL or --data-dir"
        ) from None
