"""DedupedEvents: one accepted copy of each (provider, event_id), within the run and against
the events settled by earlier batches; exact copies counted, conflicting copies quarantined.

Events are spread over shards by a hash of (provider, event_id), so every copy of a key, new or
settled, meets in one shard: a runner can resolve shards in parallel. With `spill_dir`, shard
parts travel as Arrow IPC files (transforms/spill.py) instead of pickled tables."""
from __future__ import annotations

from typing import Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from settlement import duck
from settlement.dedup import resolve
from settlement.events import EVENT_SCHEMA, SETTLED_EVENT_SCHEMA
from transforms import coders  # noqa: F401  (registers the pa.Table coder)
from transforms.spill import spill, unspill
from transforms.threaded import ThreadedBlocks
from transforms.validated_events import COUNTS, QUARANTINED, Count, count_by_source

_SHARD_SQL = "SELECT CAST(hash(provider, event_id) % {shards} AS INTEGER) AS shard FROM t"


# Columns with few distinct values travel the shuffle dictionary-encoded: a fraction of the bytes.
_REPETITIVE = ("provider", "node_id", "consumer", "contract", "unit", "source")


def compact(table: pa.Table) -> pa.Table:
    for name in _REPETITIVE:
        if name in table.column_names:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, pc.dictionary_encode(table.column(name)))
    return table


def expand(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return table.cast(schema)


def _shards_of(table: pa.Table, shards: int) -> np.ndarray:
    """Shard of each row: a DuckDB hash of (provider, event_id)."""
    result = duck.query(_SHARD_SQL.format(shards=shards), {"t": table.select(["provider", "event_id"])})
    return result.column("shard").to_numpy()


def split_by_shard(table: pa.Table, shards: int, spill_dir: str | None = None):
    """(shard, rows of that shard) for each shard with rows, in their order in `table`;
    deterministic across runs. The rows are put in shard order once, then sliced."""
    shard = _shards_of(table, shards)
    table = compact(table).take(pa.array(np.argsort(shard, kind="stable")))
    start = 0
    for s, count in enumerate(np.bincount(shard, minlength=shards).tolist()):
        if count:
            part = table.slice(start, count)
            yield s, spill(part, spill_dir) if spill_dir else part
        start += count


def _split_block(table: pa.Table, shards: int, spill_dir: str | None) -> list:
    return list(split_by_shard(table, shards, spill_dir))


def _load(part, schema: pa.Schema) -> pa.Table:
    return expand(unspill(part) if isinstance(part, str) else part, schema)


def read_settled(path: str):
    yield pq.read_table(path, columns=SETTLED_EVENT_SCHEMA.names).cast(SETTLED_EVENT_SCHEMA)


def resolve_shard(element) -> list:
    """Outputs of one shard: (shard, accepted events), quarantined conflicts and counts."""
    shard, grouped = element
    new = [_load(t, EVENT_SCHEMA) for t in grouped["new"]]
    if not new:
        return []
    # each part is a run of one file's records: in file order, they need no sorting (dedup.py)
    new.sort(key=lambda t: (t.column("source")[0].as_py(), t.column("record_no")[0].as_py()))
    settled = [_load(t, SETTLED_EVENT_SCHEMA) for t in grouped["settled"]]
    result = resolve(pa.concat_tables(new), pa.concat_tables(settled) if settled else None)
    outputs = [beam.pvalue.TaggedOutput(COUNTS, key)
               for table, category in ((result.accepted, "accepted"), (result.duplicates, "duplicates"),
                                       (result.quarantined, "quarantined"))
               for key in count_by_source(table, category)]
    if result.quarantined.num_rows:
        outputs.append(beam.pvalue.TaggedOutput(QUARANTINED, result.quarantined))
    if result.accepted.num_rows:
        outputs.append((shard, result.accepted))
    return outputs


class DedupedEvents(beam.PTransform):
    """Validated event tables -> (shard, accepted table), plus `quarantined` and `counts`."""

    def __init__(self, settled_files: list[str], shards: int = 8, spill_dir: str | None = None):
        super().__init__()
        self.settled_files = list(settled_files)
        self.shards = shards
        self.spill_dir = spill_dir

    def expand(self, events):
        part = Tuple[int, str if self.spill_dir else pa.Table]
        new = events | "ShardNew" >> beam.ParDo(
            ThreadedBlocks(_split_block, self.shards, self.spill_dir)).with_output_types(part)
        settled = (events.pipeline
                   | "SettledFiles" >> beam.Create(self.settled_files)
                   | "ReadSettled" >> beam.FlatMap(read_settled).with_output_types(pa.Table)
                   | "ShardSettled" >> beam.FlatMap(
                       split_by_shard, self.shards, self.spill_dir).with_output_types(part))
        return ({"new": new, "settled": settled}
                | "GroupByShard" >> beam.CoGroupByKey()
                | "Resolve" >> beam.ParDo(ThreadedBlocks(resolve_shard)).with_output_types(
                    Tuple[int, pa.Table], **{QUARANTINED: pa.Table, COUNTS: Count}).with_outputs(
                    QUARANTINED, COUNTS, main="accepted"))
