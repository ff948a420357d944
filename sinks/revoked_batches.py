"""After governance revokes batch B (and so every later one): keep what they held, roll the
ledger back to B - 1, so that a batch run settles their events again and `chain commit`
commits the rebuilt batch B. Nothing is lost:

    OUT/revoked/<B>/<n>/events.parquet     every event of batches B … HEAD, as SPEC §1 usage
                                           (the input of the rebuild: `meterroot batch --input`)
    OUT/revoked/<B>/<n>/{events,quarantine,settlement_lines,batches,quality}/…
                                           their outputs as they were, for the record
    OUT/revoked/<B>/<n>/revocation.json    batch, reason, its hash, the tx, the roots revoked

<n> counts the revocations of batch B (1, 2, …). The copy is complete before the ledger moves:
a crash in between leaves the ledger as it was and a copy the next attempt writes again.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from settlement.errors import UsageError
from sinks import atomic
from sinks.ledger_store import LedgerStore, batch_dir, roll_back

ARCHIVED_TREES = ("events", "quarantine", "settlement_lines", "batches")
QUALITY = "quality"
"""OUT/quality/<B>: a batch's validation record (expectations), kept with the revoked batch."""
USAGE_COLUMNS = {"event_id": "event_id", "provider": "provider", "node_id": "node_id",
                 "consumer": "consumer", "contract": "contract", "unit": "unit",
                 "quantity": "quantity", "timestamp_ms": "timestamp", "token_id": "token_id"}
"""Settled event column -> SPEC §1 usage field (time stays integer milliseconds)."""


@dataclass(frozen=True)
class RolledBack:
    """What `revoke_locally` kept and undid."""

    batch: int
    """The first revoked batch: the ledger's last batch is now batch - 1."""
    batches: list[int]
    """Every batch rolled back (batch … the old HEAD)."""
    folder: Path
    """OUT/revoked/<batch>/<n>: the copy."""
    events_file: Path
    """The rolled-back events as usage: the input that settles them again."""
    events: int
    """How many events it holds."""


def revoke_locally(out: Path, batch: int, record: dict) -> RolledBack | None:
    """Copy batches `batch` … HEAD of OUT aside, then roll its ledger back to `batch` - 1.

    `record` (reason, tx, roots, …) is written beside the copy. None when OUT has not settled
    `batch` (nothing to undo)."""
    out = Path(out)
    head = LedgerStore(out).head()
    if head is None or head.batch < batch:
        return None
    if batch < 1:
        raise UsageError(f"batch {batch} is no batch: batches are numbered from 1")
    numbers = list(range(batch, head.batch + 1))
    folder = _next_folder(out / "revoked" / str(batch))
    staging = folder.with_name(f".{folder.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    for number in numbers:
        for source in _batch_folders(out, number):
            shutil.copytree(source, staging / source.relative_to(out))
    events = _usage_of(out, numbers)
    atomic.write_parquet(staging / "events.parquet", events)
    atomic.write_json(staging / "revocation.json", record | {"batches": numbers})
    staging.rename(folder)  # the copy is whole: now the ledger may move
    roll_back(out, batch - 1)
    for number in numbers:  # their validation records no longer describe a batch of OUT
        quality = out / QUALITY / str(number)
        if quality.exists():
            shutil.rmtree(quality)
    return RolledBack(batch=batch, batches=numbers, folder=folder, events_file=folder / "events.parquet",
                      events=events.num_rows)


def _batch_folders(out: Path, number: int) -> list[Path]:
    folders = [batch_dir(out, tree, number) for tree in ARCHIVED_TREES] + [out / QUALITY / str(number)]
    return [folder for folder in folders if folder.exists()]


def _next_folder(base: Path) -> Path:
    n = 1
    while (base / str(n)).exists():
        n += 1
    base.mkdir(parents=True, exist_ok=True)
    return base / str(n)


def _usage_of(out: Path, numbers: list[int]) -> pa.Table:
    parts = [pq.read_table(path) for number in numbers
             for path in sorted(batch_dir(out, "events", number).glob("*.parquet"))]
    if not parts:
        return pa.table({name: pa.array([], pa.string()) for name in USAGE_COLUMNS.values()})
    table = pa.concat_tables(parts, promote_options="permissive")
    return table.select(list(USAGE_COLUMNS)).rename_columns(list(USAGE_COLUMNS.values()))
