"""Rolling usage files (SPEC §1 JSONL) in the gateway's --usage-dir, each published whole.

The open file is a hidden `.usage-….jsonl.open` beside the published ones: `meterroot batch
--input 'DIR/*.jsonl'` and `meterroot stream --watch DIR` never see it. A request's events are
written to it (one write(2) per request, to the kernel) before the request is answered, so an
answered request survives the gateway being killed. A file is published by fsync + rename to
`usage-<opened ms>-<run>-<n>.jsonl` once it reaches `max_bytes` or `max_seconds`, and when the
gateway stops. On start, an open file left by a killed gateway is cut after its last complete
line (a line cut short was never acknowledged) and published the same way.
"""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

OPEN_SUFFIX = ".jsonl.open"
PUBLISHED_PREFIX = "usage-"


@dataclass(frozen=True)
class UsageEvent:
    """One SPEC §1 event as the gateway writes it."""

    event_id: str
    """Unique per provider: the gateway run, the request's sequence number and the unit's index."""
    provider: str
    """EIP-55 address of the provider this gateway serves for."""
    node_id: str
    """The gateway's node id."""
    consumer: str
    """EIP-55 address of the signed-in consumer."""
    contract: str
    """EIP-55 address of the service consumed (the metering table's)."""
    unit: str
    """Tariff unit."""
    quantity: int
    """Units of this request."""
    timestamp_ms: int
    """When the gateway answered, in ms since the Unix epoch."""
    token_id: int | None
    """The consumer's Counter NFT id, when it has one."""

    def to_line(self) -> bytes:
        # Every field is an address, a number or a name held to [A-Za-z0-9._:-]: nothing to escape.
        token = "" if self.token_id is None else f',"token_id":{self.token_id}'
        return (f'{{"event_id":"{self.event_id}","provider":"{self.provider}","node_id":"{self.node_id}",'
                f'"consumer":"{self.consumer}","contract":"{self.contract}","unit":"{self.unit}",'
                f'"quantity":{self.quantity},"timestamp":{self.timestamp_ms}{token}}}\n').encode()


def new_run_id() -> str:
    """A gateway run's id: its start time and 32 random bits, so event ids never repeat across
    restarts (nor across gateways sharing one provider address)."""
    return f"{int(time.time() * 1000):x}{secrets.token_hex(4)}"


class RollingUsageWriter:
    """Appends event lines to the open file; publishes it by size and age."""

    def __init__(self, folder: Path, run_id: str, *, max_bytes: int = 64 << 20, max_seconds: float = 60,
                 fsync_on_publish: bool = True):
        self.folder = Path(folder)
        self.run_id = run_id
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.fsync_on_publish = fsync_on_publish
        self.published = 0
        """Files published by this writer."""
        self.events_written = 0
        self._sequence = 0
        self._fd: int | None = None
        self._open_path: Path | None = None
        self._opened_at = 0.0
        self._size = 0
        self.folder.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ recovery at start
    def recover(self) -> list[Path]:
        """Publish the complete lines of every open file a killed gateway left; returns what was
        published (empty files are removed)."""
        published = []
        for path in sorted(self.folder.glob(f".{PUBLISHED_PREFIX}*{OPEN_SUFFIX}")):
            with open(path, "r+b") as handle:
                data = handle.read()
                keep = data.rfind(b"\n") + 1
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())
            if keep == 0:
                path.unlink()
                continue
            target = self.folder / path.name[1:-len(".open")]
            os.replace(path, target)
            published.append(target)
        if published:
            self._fsync_folder()
        return published

    # ------------------------------------------------------------------ writing
    def append(self, data: bytes, events: int) -> None:
        """Hand whole lines to the kernel; on return they survive this process being killed."""
        if self._fd is None:
            self._open()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)
        self.events_written += events
        if self._size >= self.max_bytes:
            self.publish()

    def tick(self) -> None:
        """Publish the open file once it is older than max_seconds (called on a timer)."""
        if self._fd is not None and time.monotonic() - self._opened_at >= self.max_seconds:
            self.publish()

    def publish(self) -> Path | None:
        """fsync and rename the open file to its published name; None when nothing is open."""
        if self._fd is None:
            return None
        fd, path = self._fd, self._open_path
        self._fd = self._open_path = None
        if self.fsync_on_publish:
            os.fsync(fd)
        os.close(fd)
        target = self.folder / path.name[1:-len(".open")]
        os.replace(path, target)
        if self.fsync_on_publish:
            self._fsync_folder()
        self.published += 1
        return target

    def close(self) -> Path | None:
        return self.publish()

    def _open(self) -> None:
        self._sequence += 1
        name = f".{PUBLISHED_PREFIX}{int(time.time() * 1000):013d}-{self.run_id}-{self._sequence:06d}{OPEN_SUFFIX}"
        self._open_path = self.folder / name
        self._fd = os.open(self._open_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._opened_at = time.monotonic()
        self._size = 0

    def _fsync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
