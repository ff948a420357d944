"""Every file meterroot writes appears whole or not at all: write a temp file beside it, fsync,
then rename over the target (atomic on POSIX file systems)."""
from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq


KILL_AT_WRITE = "METERROOT_KILL_AT_WRITE"
WRITE_TRACE = "METERROOT_WRITE_TRACE"
_writes = 0
_writes_guard = threading.Lock()


def crash_point(path: Path, when: str) -> None:
    """The kill points of the integrity tests: every file a run writes is a point a crash can
    fall on. METERROOT_KILL_AT_WRITE=N (or N+) kills the process (SIGKILL, as kill -9 would)
    just before (after) the N-th file of the run is renamed into place; METERROOT_WRITE_TRACE=FILE
    appends the path of each one, so a test knows how many points a run has and where they are."""
    global _writes
    kill_at, trace = os.environ.get(KILL_AT_WRITE), os.environ.get(WRITE_TRACE)
    if kill_at is None and trace is None:
        return
    with _writes_guard:
        if when == "before":
            _writes += 1
        number = _writes
    if trace and when == "after":
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(f"{number}\t{path}\n")
    if kill_at in (f"{number}", f"{number}+") and kill_at.endswith("+") == (when == "after"):
        os.kill(os.getpid(), signal.SIGKILL)


def _replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        crash_point(path, "before")
        os.replace(tmp, path)
        crash_point(path, "after")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    _replace(Path(path), lambda handle: handle.write(data))


def write_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """The concatenation of `chunks`, written as they come (a dump of hundreds of megabytes is
    never whole in memory). Each written chunk is handed to the disk at once (POSIX_FADV_DONTNEED
    starts its writeback and drops the pages once clean), so the disk writes while the next
    chunk is made and the final fsync waits only for the last ones."""
    def write(handle) -> None:
        handle.flush()
        fd, at = handle.fileno(), handle.tell()
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            if _ADVISE:
                os.posix_fadvise(fd, at, len(chunk), os.POSIX_FADV_DONTNEED)
            at += len(chunk)
        handle.seek(at)
    _replace(Path(path), write)


_ADVISE = hasattr(os, "posix_fadvise")


def dumps_json(data) -> bytes:
    """The one JSON spelling of every file meterroot writes: sorted keys, two-space indent."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def write_json(path: Path, data) -> None:
    write_bytes(path, dumps_json(data))


def write_compact_json(path: Path, data) -> None:
    """Large machine-read JSON (Merkle tree dumps): no indentation, same key order as given."""
    write_bytes(path, json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode() + b"\n")


def write_parquet(path: Path, table: pa.Table, dictionary=True) -> None:
    """Parquet without wall-clock metadata, so equal tables give equal bytes. `dictionary`: the
    columns worth dictionary-encoding (a list), or True for all."""
    _replace(Path(path), lambda handle: pq.write_table(
        table, handle, compression="zstd", write_statistics=True, store_schema=True,
        use_dictionary=dictionary))
