"""One writer per output directory (SPEC §10): an exclusive lock on OUT/.meterroot.lock.

The lock is an `fcntl.flock` on the lock file: the kernel releases it when its holder exits,
however it exits (kill -9 included), so a lock left by a dead process is simply taken by the
next run. The file's content (pid, host, start time, command) is only there to name the holder
in the message a second run prints; the holder rewrites it when it takes the lock.

Held by every command that writes OUT (batch, stream, chain commit, chain revoke, each commit
step of chain watch, permits --ingest, validate, the catalog) from before it reads the ledger
until its last write. Re-entrant within one process: a command that
holds the lock may call another step that takes it (batch -> validation).
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from settlement.errors import UsageError
from sinks import layout

POLL_SECONDS = 0.2


class OutputLocked(UsageError):
    """Another run holds OUT's lock (exit 2): it names the holder."""


_held: dict[str, "OutputLock"] = {}
_held_guard = threading.Lock()


def check_output_path(out: Path, flag: str = "--output") -> Path:
    """Refuse an output directory that cannot be one: a file, or a path under a file."""
    out = Path(out)
    for candidate in (out, *out.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is a file" if candidate == out else f"is under {candidate}, which is a file"
                raise UsageError(f"{flag} {out} {where}; pass a directory (new or from an earlier run)")
            break
    staging = layout.staging_root(out)
    if staging.exists() and not staging.is_dir():
        raise UsageError(f"{staging} is a file, but meterroot keeps its per-run staging folders there; "
                         "remove that file and run again")
    return out


def _holder_text(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return (f"pid {data['pid']} on host {data['host']}, started {data['started']} "
                f"(`meterroot {data['command']}`)")
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"


class OutputLock:
    """`with OutputLock(out, "batch", wait_seconds=0):` — exclusive access to OUT."""

    def __init__(self, out: Path, command: str, wait_seconds: float = 0):
        self.out = Path(out)
        self.command = command
        self.wait_seconds = wait_seconds
        self.path = layout.lock_path(self.out)
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> "OutputLock":
        key = str(self.path.resolve()) if self.path.parent.exists() else str(self.path.absolute())
        with _held_guard:
            owner = _held.get(key)
            if owner is not None:
                owner._depth += 1
                self._reentered = owner
                return self
        self._reentered = None
        check_output_path(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = _holder_text(self.path)
                    waited = f" after waiting {self.wait_seconds:g} s" if self.wait_seconds else ""
                    raise OutputLocked(
                        f"{self.out} is in use by {holder}{waited}; only one run may write an output "
                        "directory at a time: wait for it to finish (or pass --wait-lock SECONDS), or "
                        "use another --output") from None
                time.sleep(POLL_SECONDS)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd
        self._depth = 1
        with _held_guard:
            _held[str(self.path.resolve())] = self
        return self

    def release(self) -> None:
        owner = getattr(self, "_reentered", None)
        if owner is not None:
            owner._depth -= 1
            self._reentered = None
            return
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        with _held_guard:
            _held.pop(str(self.path.resolve()), None)
        fd, self._fd = self._fd, None
        os.close(fd)  # the content stays: it names the last holder, harmlessly

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holds_output_lock(command: str, output_attr: str = "output", create: bool = False):
    """Decorate a CLI handler `func(args) -> int` so it runs holding the lock of args.<output>
    (waiting up to args.wait_lock seconds when the command has that option). create=False: an
    output directory that does not exist is not created (the command says what is wrong). A
    command whose output is optional and not given (`chain revoke` without --output) writes no
    OUT and takes no lock."""
    def decorate(func):
        @functools.wraps(func)
        def run(args):
            if getattr(args, output_attr, None) is None:
                return func(args)
            out = Path(getattr(args, output_attr))
            if not create and not out.is_dir():
                return func(args)
            with OutputLock(out, command, getattr(args, "wait_lock", 0) or 0):
                return func(args)
        return run
    return decorate
