"""The one exception type that means "the user gave us something we cannot use".

The CLI turns it into a single line on stderr and a non-zero exit; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class ActiscopeError(Exception):
    """A user-facing problem: bad path, bad value, unreadable file. The message is the whole story."""

    exit_code = 2


class DataError(ActiscopeError):
    """The dataset (or one file in it) cannot be used as given."""


class MediaReadError(DataError):
    """A file that is not a usable image or clip; the message names the file and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
