"""What a stream's engine hands its one ledger writer: panes of epochs, quarantined records,
the accounting of each file read and events past the allowed lateness. Plain values around Arrow
tables, the same for the Beam stream and the Flink job."""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

ON_TIME = "ON_TIME"
LATE = "LATE"


@dataclass(frozen=True)
class Pane:
    """One firing of an epoch's window: everything that arrived for it since its last firing."""

    epoch: int
    """The epoch (window) that fired."""
    timing: str
    """ON_TIME for the firing when the watermark passed the window's end, else LATE."""
    index: int
    """0 for the window's first firing, then 1, 2, …"""
    events: pa.Table
    """The pane's events (EVENT_SCHEMA), in any order: a cut puts all of its panes' events in
    (source, record_no) order once (settlement.dedup.resolve)."""
    digests: tuple[tuple[str, str], ...]
    """(path, sha256) of the files the events came from."""

    @property
    def on_time(self) -> bool:
        return self.timing == ON_TIME


def merge_digests(*groups) -> tuple[tuple[str, str], ...]:
    merged = {}
    for group in groups:
        merged.update(group)
    return tuple(sorted(merged.items()))


def sorted_events(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables).sort_by([("source", "ascending"), ("record_no", "ascending")])



@dataclass(frozen=True)
class FileRead:
    """What the source did with one file: the accounting the stream's run.json adds up."""

    path: str
    """The file."""
    sha256: str
    """Its digest as read ("" when it could not be read)."""
    read: int
    """Records in the file."""
    too_late: int
    """Accepted events past the allowed lateness, sent to OUT/late/."""
    error: str | None = None
    """Why the file could not be read at all (then nothing of it is counted)."""


@dataclass(frozen=True)
class Quarantined:
    """Records of one file that failed validation (QUARANTINE_SCHEMA, batch null)."""

    table: pa.Table
    digests: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TooLate:
    """Accepted events of one file whose epoch had closed when they arrived (EVENT_SCHEMA)."""

    path: str
    sha256: str
    events: pa.Table
