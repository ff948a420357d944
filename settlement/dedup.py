"""Duplicates (SPEC §1-2): one copy of each (provider, event_id) is accepted; exact copies are
counted and dropped; copies whose content differs are all quarantined, whatever their order;
a copy of an event settled in an earlier batch is a duplicate if identical, else only the new
copy is quarantined (settled money never moves)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from settlement import duck
from settlement.events import CONTENT_COLUMNS, EVENT_SCHEMA, QUARANTINE_SCHEMA

KEY = ["provider", "event_id"]


@dataclass
class Deduped:
    accepted: pa.Table
    """One copy of each new event (EVENT_SCHEMA), the first by (source, record_no)."""
    duplicates: pa.Table
    """Exact copies dropped: columns source, record_no."""
    quarantined: pa.Table
    """Conflicting copies (QUARANTINE_SCHEMA, batch null)."""


def content_key(table: pa.Table) -> pa.Array:
    """One string per row that is equal exactly when the SPEC §1 content is equal."""
    parts = [pc.fill_null(pc.cast(table.column(c), pa.string()), "") for c in CONTENT_COLUMNS]
    return pc.binary_join_element_wise(*parts, "\x1f")


def _conflicts(rows: pa.Table, detail: str) -> pa.Table:
    """Quarantine rows for conflicting copies; the record is the normalised copy as JSON."""
    records = []
    for row in rows.select(list(EVENT_SCHEMA.names)).to_pylist():
        record = {k: (str(v) if k == "token_id" and v is not None else v)
                  for k, v in row.items() if k not in ("source", "record_no", "epoch")}
        records.append(_json(record))
    n = rows.num_rows
    return pa.table({
        "batch": pa.nulls(n, pa.int64()),
        "reason": pa.array(["conflicting_duplicate"] * n, pa.string()),
        "detail": pa.array([detail.format(provider=p, event_id=e) for p, e in
                            zip(rows.column("provider").to_pylist(), rows.column("event_id").to_pylist())],
                           pa.string()),
        "source": rows.column("source").combine_chunks() if n else pa.array([], pa.string()),
        "record": pa.array(records, pa.string()),
        "record_no": rows.column("record_no").combine_chunks() if n else pa.array([], pa.int64()),
    }, schema=QUARANTINE_SCHEMA)


def _json(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def key_hashes(table: pa.Table) -> np.ndarray:
    """DuckDB's 64-bit hash of each row's (provider, event_id): copies of a key have equal hashes
    (within one process: never store them), different keys almost always different ones."""
    return duck.query("SELECT hash(provider, event_id) AS h FROM t", {"t": table.select(KEY)}) \
               .column("h").to_numpy().astype(np.uint64, copy=False)


def _unique_keys(table: pa.Table) -> pa.Array:
    """Mask of rows whose (provider, event_id) occurs once in `table`.

    Copies of a key have equal 64-bit hashes (DuckDB's hash of the pair), so only rows whose hash
    repeats can repeat a key: they alone are grouped by key (none, or a few, in the usual batch)."""
    n = table.num_rows
    mask = np.ones(n, dtype=bool)
    if n < 2:
        return pa.array(mask)
    hashes = key_hashes(table)
    order = np.argsort(hashes, kind="stable")
    same = hashes[order][1:] == hashes[order][:-1]
    if not same.any():
        return pa.array(mask)
    candidate = np.zeros(n, dtype=bool)
    candidate[1:] |= same
    candidate[:-1] |= same
    rows = np.sort(order[candidate])
    keys = table.select(KEY).take(pa.array(rows))
    counts = keys.group_by(KEY).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
    if repeated.num_rows:
        marked = keys.append_column("_row", pa.array(rows)).join(repeated, keys=KEY, join_type="left semi")
        mask[marked.column("_row").to_numpy()] = False
    return pa.array(mask)


def in_record_order(table: pa.Table) -> pa.Table:
    """`table` sorted by (source, record_no), without copying it when it already is (the usual
    case: one file, parts concatenated in order)."""
    sources = pc.unique(table.column("source"))
    if len(sources) <= 1:
        numbers = table.column("record_no").to_numpy()
        if len(numbers) < 2 or bool(np.all(numbers[1:] >= numbers[:-1])):
            return table
    return table.take(pc.sort_indices(table, sort_keys=[("source", "ascending"), ("record_no", "ascending")]))


def _as_events(table: pa.Table) -> pa.Table:
    table = table.select(EVENT_SCHEMA.names)
    return table if table.schema.equals(EVENT_SCHEMA) else table.cast(EVENT_SCHEMA)


def resolve(new: pa.Table, settled: pa.Table | None = None) -> Deduped:
    """Resolve the new events of one shard against each other and against settled events
    (SETTLED_EVENT_SCHEMA columns: provider, event_id and the content columns, batch).

    Most keys occur once and were never settled: they are accepted without comparing content;
    only repeated or already settled keys take the slow path of content comparison."""
    new = in_record_order(new.select(EVENT_SCHEMA.names))
    new = new.append_column("_rank", pa.array(np.arange(new.num_rows, dtype=np.int64)))

    simple = _unique_keys(new)
    if settled is not None and settled.num_rows:
        seen = new.select(KEY + ["_rank"]).join(settled.select(KEY), keys=KEY, join_type="left semi")
        if seen.num_rows:
            seen_mask = pc.is_in(new.column("_rank"), seen.column("_rank"))
            simple = pc.and_(simple, pc.invert(seen_mask))
    else:
        settled = None
    if pc.all(simple).as_py():
        return Deduped(_as_events(new),
                       pa.table({"source": pa.array([], pa.string()), "record_no": pa.array([], pa.int64())}),
                       QUARANTINE_SCHEMA.empty_table())
    fast = new.filter(simple)
    slow = new.filter(pc.invert(simple))
    if not slow.num_rows:
        return Deduped(_as_events(fast),
                       pa.table({"source": pa.array([], pa.string()), "record_no": pa.array([], pa.int64())}),
                       QUARANTINE_SCHEMA.empty_table())
    result = _resolve_by_content(slow, settled)
    accepted = pa.concat_tables([_as_events(fast), result.accepted]) \
                 .sort_by([("source", "ascending"), ("record_no", "ascending")])
    return Deduped(accepted, result.duplicates, result.quarantined)


def _resolve_by_content(new: pa.Table, settled: pa.Table | None) -> Deduped:
    """The rows whose key repeats or was settled before, compared by content."""
    new = new.append_column("_content", content_key(new))
    against_settled = None
    if settled is not None:
        known = settled.select(KEY).append_column("_settled", content_key(settled)) \
                       .append_column("_settled_batch", settled.column("batch"))
        new = new.join(known, keys=KEY, join_type="left outer")
        seen_before = pc.is_valid(new.column("_settled"))
        same = pc.fill_null(pc.equal(new.column("_content"), new.column("_settled")), False)
        against_settled = (pc.and_(seen_before, same), pc.and_(seen_before, pc.invert(same)))
        fresh = new.filter(pc.invert(seen_before))
    else:
        fresh = new

    groups = fresh.group_by(KEY).aggregate([("_content", "count_distinct"), ("_rank", "min")])
    fresh = fresh.join(groups, keys=KEY, join_type="inner")
    conflicting = pc.greater(fresh.column("_content_count_distinct"), 1)
    first = pc.equal(fresh.column("_rank"), fresh.column("_rank_min"))
    accepted = fresh.filter(pc.and_(pc.invert(conflicting), first))
    duplicate = fresh.filter(pc.and_(pc.invert(conflicting), pc.invert(first)))

    quarantined = [_conflicts(fresh.filter(conflicting),
                              "(provider {provider}, event_id {event_id}) was delivered with different "
                              "content in this run; every copy is held back until the operator "
                              "re-delivers one consistent copy")]
    duplicates = [duplicate.select(["source", "record_no"])]
    if against_settled is not None:
        duplicates.append(new.filter(against_settled[0]).select(["source", "record_no"]))
        clashing = new.filter(against_settled[1])
        quarantined.append(_conflicts(
            clashing, "(provider {provider}, event_id {event_id}) was settled before with different "
                      "content; the settled copy stands and this copy is not paid"))
    accepted = accepted.sort_by([("_rank", "ascending")]).select(EVENT_SCHEMA.names)
    return Deduped(accepted.cast(EVENT_SCHEMA),
                   pa.concat_tables(duplicates),
                   pa.concat_tables(quarantined))
