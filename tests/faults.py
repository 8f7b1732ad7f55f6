"""Faults done for real to a command run in its own process (kill -9 while it writes a file, a full disk
under its output folder) and files that would run code if unpickled. Helpers for tests/engine/test_faults.py,
tests/test_file_faults.py and the tests of folders handed over by someone else (tests/test_untrusted.py,
tests/web/test_untrusted_web.py)."""

from __future__ import annotations

import fnmatch
import functools
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest


def actiscope(
    *args: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[str]:
    """`python -m actiscope.cli ARGS` in a process of its own; with `log`, its stdout and stderr go to
    that file (a pipe nobody reads while it runs would stop it once full), else to pipes."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if log is None:
        return subprocess.Popen(
            cli_argv(*args), env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    with log.open("w") as output:  # the child has its own copy of the descriptor
        return subprocess.Popen(cli_argv(*args), env=env, text=True, stdout=output, stderr=subprocess.STDOUT)


def writing(pid: int, folder: Path, pattern: str = "*") -> Path | None:
    """A file under `folder` whose name matches `pattern` (fnmatch) that process `pid` has open for
    writing, or None (from /proc)."""
    inside = f"{folder.resolve()}{os.sep}"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone
        return None
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if not (target.startswith(inside) and fnmatch.fnmatch(Path(target).name, pattern)):
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:  # closed meanwhile
            continue
        flags = int(next(line for line in info.splitlines() if line.startswith("flags:")).split()[1], 8)
        if flags & (os.O_WRONLY | os.O_RDWR):
            return Path(target)
    return None


def _stopped(pid: int) -> bool:
    """Whether every thread of `pid` has stopped (SIGSTOP is delivered asynchronously)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] not in ("T", "t"):
            return False
    return True


def kill_while_writing(
    proc: subprocess.Popen[str],
    folder: Path,
    *,
    timeout: float,
    pattern: str = "*",
    ready: Callable[[], bool] = lambda: True,
    poll: float = 0.001,
) -> Path | None:
    """SIGKILL `proc` while it is in the middle of writing a file under `folder` whose name matches
    `pattern`, once `ready()`.

    Polls /proc for a file it holds open for writing there; on seeing one, stops it (SIGSTOP) and looks
    again: still open, the write was caught half done and the process dies there (SIGKILL); closed in
    the meantime, it goes on (SIGCONT) and the hunt with it. Returns the file it was writing, or None
    when it ended (or `timeout` passed, and then it is killed) without being caught."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if not ready():
            time.sleep(0.05)
            continue
        if writing(proc.pid, folder, pattern) is None:
            time.sleep(poll)  # leaves the CPU to the process it watches
            continue
        os.kill(proc.pid, signal.SIGSTOP)
        while not _stopped(proc.pid):
            time.sleep(0.0005)
        caught = writing(proc.pid, folder, pattern)
        if caught is not None:
            proc.kill()
            proc.wait(timeout=30)
            return caught
        os.kill(proc.pid, signal.SIGCONT)
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    return None


@functools.cache
def can_mount_tmpfs() -> bool:
    """Whether this user may mount a tmpfs in a user and mount namespace of its own (`unshare -rm`)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=1m", "none", "/mnt"], capture_output=True
    )
    return probe.returncode == 0


@dataclass(frozen=True)
class FullDisk:
    """How the disk fills: a tmpfs of `size` on the output folder (filled to the last byte with `fill`)
    where this user can mount one, else a file size limit of `file_limit` bytes (RLIMIT_FSIZE, SIGXFSZ
    ignored: a write past it fails with EFBIG)."""

    size: str
    file_limit: int
    fill: bool = False

    @property
    def how(self) -> str:
        return "tmpfs" if can_mount_tmpfs() else "RLIMIT_FSIZE"


def on_full_disk(
    argv: Sequence[str], folder: Path, disk: FullDisk, *, seed: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run `argv` with `folder` (holding a copy of what `seed` holds) on a full disk. A tmpfs is mounted in
    a mount namespace of its own (`unshare -rm`) and vanishes with it, so what was on it at the end is
    copied out. Returns the finished process and the folder holding what `folder` held at its end."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    folder.mkdir(parents=True, exist_ok=True)
    if disk.how == "RLIMIT_FSIZE":
        if seed is not None:
            shutil.copytree(seed, folder, dirs_exist_ok=True)

        def limit() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # kept across exec: writes get EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (disk.file_limit, disk.file_limit))

        done = subprocess.run(argv, env=env, text=True, capture_output=True, timeout=300, preexec_fn=limit)
        return done, folder
    after = folder.parent / f"{folder.name}-after"
    after.mkdir()
    script = (
        f'mount -t tmpfs -o size={disk.size} none "$DIR" || exit 99\n'
        + ('cp -a "$SEED/." "$DIR/"\n' if seed else "")
        + ('dd if=/dev/zero of="$DIR/.filler" bs=64k 2>/dev/null\n' if disk.fill else "")
        + '"$@"; rc=$?\nrm -f "$DIR/.filler"; cp -a "$DIR/." "$AFTER/"; exit $rc\n'
    )
    env |= {"DIR": str(folder), "AFTER": str(after), "SEED": str(seed)}
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *argv],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode != 99, f"could not mount a tmpfs on {folder}: {done.stderr}"
    return done, after


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "actiscope.cli", *args]


class RunsCode:
    """Unpickled, it runs a shell command that creates `marker`: what a file from someone else may hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def plant_code(path: Path, marker: Path, how: str = "torch.save") -> None:
    """Make `path` a file that would create `marker` if anything unpickled it: torch.save's zip (as a
    checkpoint is) or a plain pickle, of a dict shaped like a Lightning checkpoint."""
    payload = {"state_dict": RunsCode(marker), "pytorch-lightning_version": "2.6.0", "epoch": 0}
    if how == "torch.save":
        import torch

        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))


def code_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file planted code would create. torch.load's weights-only default is switched off (as
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD does, for old checkpoints): only reading no pickle protects then."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    return tmp_path / "code-ran"


def handed_over(trained_run: Path, to: Path, marker: Path) -> Path:
    """A copy of a whole run at `to` whose checkpoints, TorchScript file and a stray .pt would run code."""
    run = Path(shutil.copytree(trained_run, to))
    for planted in (
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "model/model.torchscript.pt",
        "model/weights.pt",
    ):
        plant_code(run / planted, marker)
    return run


def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.load and torch.jit.load fail the test if called (predict, evaluate and serve read none)."""
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unpickled {args[:1]} on a path that must read no pickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.jit, "load", refuse)
