"""The Parquet, tree and ledger files of a batch, each written atomically (Beam-free: the Beam
batch (transforms/write_batch_outputs.py), the Beam stream and the Flink job write through here).

Data files go to their final place under names fixed by the batch number (a rerun of a killed
run rewrites the same names); what is only known once the whole run is done (counts, digests,
the quarantine of a run that may append no batch) goes to OUT/.staging for the driver, which
writes the manifest, run.json and, last, the ledger head."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from settlement.batch import SettledBatch
from settlement.events import QUARANTINE_SCHEMA
from settlement.transition import settled_events
from sinks import atomic
from sinks.ledger_store import batch_dir

STAGING = ".staging"
REPEATED_EVENT_COLUMNS = ["batch", "provider", "node_id", "consumer", "contract", "unit", "epoch", "source"]
"""Event columns with few distinct values: dictionary-encoded in Parquet (event ids and times
are nearly unique, so trying a dictionary for them only costs time)."""


def staging_dir(out: Path) -> Path:
    return Path(out) / STAGING


def settled_events_table(table: pa.Table, batch: int) -> pa.Table:
    return settled_events(table, batch)


def write_settled_events(out: Path, batch: int, shard: int, accepted: pa.Table) -> None:
    """OUT/events/batch=B/part-<shard>.parquet: one shard of the batch's accepted events."""
    atomic.write_parquet(batch_dir(out, "events", batch) / f"part-{shard:04d}.parquet",
                         settled_events(accepted, batch), dictionary=REPEATED_EVENT_COLUMNS)


def concat_quarantine(tables) -> pa.Table:
    tables = [t.cast(QUARANTINE_SCHEMA) for t in tables]
    if not tables:
        return QUARANTINE_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by([("source", "ascending"), ("record_no", "ascending")])


def write_batch_files(settled: SettledBatch, out: Path) -> dict:
    """Lines, tree and ledger snapshots of the batch; returns the summary the driver needs."""
    b = settled.batch
    atomic.write_parquet(batch_dir(out, "settlement_lines", b) / "part-0.parquet", settled.lines)
    if settled.tree is not None:
        atomic.write_compact_json(batch_dir(out, "batches", b) / "tree.json", settled.tree.dump())
    ledger = Path(out) / "ledger"
    atomic.write_parquet(ledger / "settled_quantities" / f"batch={b}.parquet", settled.quantities_after)
    atomic.write_parquet(ledger / "cumulative" / f"batch={b}.parquet", settled.cumulative_after)
    summary = {"batch": b, "root": settled.root, "leaf_count": len(settled.payables),
               "total": str(settled.total), "protocol_fee_total": str(settled.protocol_fee_total),
               "epochs": settled.epochs, "lines": settled.lines.num_rows}
    atomic.write_json(staging_dir(out) / "batch.json", summary)
    return summary
