"""Writing files so that an interrupted run never leaves half of one behind."""

from __future__ import annotations

import errno
import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# What a full disk (or quota, or the file size limit of `ulimit -f`) makes a write fail with.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed over `path`, on failure removed.

    The temporary name keeps the suffix so tools that choose a format by extension still work. A full
    disk is an OSError (errno in DISK_FULL) that names `path`, whichever write inside it failed and
    however the writer reported it: a write to an open file names no file, and the CLI's line names
    the folder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the final file gets the usual mode
        os.replace(tmp, path)
    except Exception as exc:
        full = _disk_full(exc)
        if full is None:
            raise
        raise OSError(full.errno, full.strerror, str(path)) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)


def _disk_full(exc: BaseException | None) -> OSError | None:
    """The full-disk OSError behind `exc`, if one is: torch's writers, given a file object, raise their
    own RuntimeError while the OSError of the write that failed is still being handled."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def leftovers(path: Path) -> list[Path]:
    """The temporary files that writers of `path` killed inside `atomic_output` (kill -9, power loss)
    left beside it. Only the one writer of a file may remove them: another's may be in progress."""
    return sorted(path.parent.glob(f".{glob.escape(path.stem)}.*.tmp{glob.escape(path.suffix)}"))


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def cache_root() -> Path:
    """The folder of what actiscope keeps between runs: $ACTISCOPE_CACHE, default ~/.cache/actiscope."""
    return Path(os.environ.get("ACTISCOPE_CACHE", Path.home() / ".cache" / "actiscope"))
