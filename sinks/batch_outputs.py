"""The Parquet, tree and ledger files of a batch, each written atomically (Beam-free: the Beam
batch (transforms/write_batch_outputs.py), the Beam stream and the Flink job write through here).

Data files go to their final place under names fixed by the batch number (a rerun of a killed
run rewrites the same names); what is only known once the whole run is done (counts, digests,
the quarantine of a run that may append no batch) goes to OUT/.staging for the driver, which
writes the manifest, run.json and, last, the ledger head."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path

import pyarrow as pa

from settlement.batch import SettledBatch
from settlement.events import AMOUNT_TYPE, QUARANTINE_SCHEMA
from settlement.pricing import decimal_column
from settlement.transition import settled_events
from sinks import atomic, layout

STAGING = layout.STAGING
STREAM_RUN = "stream"
REPEATED_EVENT_COLUMNS = ["batch", "provider", "node_id", "consumer", "contract", "unit", "epoch", "source"]
"""Event columns with few distinct values: dictionary-encoded in Parquet (event ids and times
are nearly unique, so trying a dictionary for them only costs time)."""
REPEATED_LINE_COLUMNS = ["batch", "epoch", "consumer", "contract", "provider", "unit"]
"""The same for lines and the ledger snapshots: amounts are nearly unique at every shape."""


def staging_dir(out: Path, run_id: str = STREAM_RUN) -> Path:
    """The staging folder of one run (the streaming writer's when no run is named): runs never
    share one, and only the holder of OUT's lock writes staging at all."""
    return layout.run_staging(out, run_id)


def settled_events_table(table: pa.Table, batch: int) -> pa.Table:
    return settled_events(table, batch)


def write_settled_events(out: Path, batch: int, shard: int, accepted: pa.Table) -> None:
    """OUT/events/batch=B/part-<shard>.parquet: one shard of the batch's accepted events."""
    atomic.write_parquet(layout.events_dir(out, batch) / f"part-{shard:04d}.parquet",
                         settled_events(accepted, batch), dictionary=REPEATED_EVENT_COLUMNS)


def concat_quarantine(tables) -> pa.Table:
    tables = [t.cast(QUARANTINE_SCHEMA) for t in tables]
    if not tables:
        return QUARANTINE_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by([("source", "ascending"), ("record_no", "ascending")])


LEAVES_SCHEMA = pa.schema([("batch", pa.int64()), ("consumer", pa.string()), ("payee", pa.string()),
                          ("cumulative_wei", AMOUNT_TYPE), ("amount_wei", AMOUNT_TYPE),
                          ("chain_id", pa.int64()), ("registry", pa.string()), ("tree_index", pa.int64())])
"""layout.leaves_path: the leaves of tree.json as columns (what the catalog's
`payables` view reads; the tree dump stays the record)."""


def leaves_table(settled: SettledBatch) -> pa.Table:
    tree, n = settled.tree, len(settled.payables)
    chain_id, registry = (int(tree.values[0][0]), tree.values[0][1]) if n else (0, "")
    return pa.table({
        "batch": pa.repeat(pa.scalar(settled.batch, pa.int64()), n),
        "consumer": pa.array([p.consumer for p in settled.payables], pa.string()),
        "payee": pa.array([p.payee for p in settled.payables], pa.string()),
        "cumulative_wei": decimal_column([p.cumulative_wei for p in settled.payables]),
        "amount_wei": decimal_column([p.amount_wei for p in settled.payables]),
        "chain_id": pa.repeat(pa.scalar(chain_id, pa.int64()), n),
        "registry": pa.repeat(pa.scalar(registry, pa.string()), n),
        "tree_index": pa.array(tree.tree_indices[:n], pa.int64()),
    }, schema=LEAVES_SCHEMA)


def write_batch_files(settled: SettledBatch, out: Path, staging: Path | None = None) -> dict:
    """Lines, tree and ledger snapshots of the batch; returns the summary the driver needs.

    The files are independent: they are written two at a time (Parquet encoding and zstd
    release the GIL; at 2M lines the lines and the quantity snapshot are seconds each), each
    atomically as before; the first error is raised once every write has ended."""
    b = settled.batch
    writes = [lambda: atomic.write_parquet(layout.lines_path(out, b), settled.lines,
                                           dictionary=REPEATED_LINE_COLUMNS),
              lambda: atomic.write_parquet(layout.quantities_path(out, b), settled.quantities_after,
                                           dictionary=REPEATED_LINE_COLUMNS)]
    if settled.tree is not None:
        writes.append(lambda: atomic.write_chunks(layout.tree_path(out, b),
                                                  chain(settled.tree.dump_chunks(), [b"\n"])))
        writes.append(lambda: atomic.write_parquet(layout.leaves_path(out, b), leaves_table(settled),
                                                   dictionary=["batch", "payee", "chain_id", "registry"]))
    writes.append(lambda: atomic.write_parquet(layout.cumulative_path(out, b), settled.cumulative_after,
                                               dictionary=["consumer", "payee"]))
    with ThreadPoolExecutor(2, thread_name_prefix="batch-files") as pool:
        done = [pool.submit(write) for write in writes]
    for future in done:
        future.result()
    summary = {"batch": b, "root": settled.root, "leaf_count": len(settled.payables),
               "total": str(settled.total), "protocol_fee_total": str(settled.protocol_fee_total),
               "epochs": settled.epochs, "lines": settled.lines.num_rows}
    atomic.write_json((staging or staging_dir(out)) / "batch.json", summary)
    return summary
