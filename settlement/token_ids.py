"""The `bad_token_id` check (SPEC §1's optional `token_id`, §13's Counter NFT): where the token id
of a consumer is known, an event naming another id is quarantined as `bad_token_id`.

The mapping comes from the chain (each consumer's `CounterNFT.countersOf(consumer)` id, read by
sinks/chain/standing.py), so it is an input of a run, like the tariff; an event without
`token_id`, or of a consumer whose id is not known, passes. Pure: a step to run on the
validated events of a block, after the SPEC §1 rules and before dedup, so that a record failing
it gets this reason only when it passed every earlier one.
"""
from __future__ import annotations

import json
from typing import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from settlement.events import EVENT_SCHEMA, QUARANTINE_SCHEMA

REASON = "bad_token_id"


def check_token_ids(events: pa.Table, known: Mapping[str, int]) -> tuple[pa.Table, pa.Table]:
    """(events that pass, quarantine rows of those naming another token than their consumer's).

    `known`: EIP-55 consumer -> its Counter NFT id. Counts stay whole: every input row is in
    exactly one of the two outputs."""
    if not known or not events.num_rows:
        return events, QUARANTINE_SCHEMA.empty_table()
    consumers = pa.array(list(known), pa.string())
    ids = pa.array([str(known[c]) for c in known], pa.string()).cast(EVENT_SCHEMA.field("token_id").type)
    position = pc.index_in(events.column("consumer"), value_set=consumers)
    expected = pc.take(ids, position)  # null where the consumer's id is not known
    given = events.column("token_id")
    bad = pc.fill_null(pc.and_(pc.is_valid(given), pc.not_equal(given, expected)), False)
    if not pc.any(bad).as_py():
        return events, QUARANTINE_SCHEMA.empty_table()
    rows = events.filter(bad).to_pylist()
    quarantined = pa.table({
        "batch": pa.nulls(len(rows), pa.int64()),
        "reason": pa.array([REASON] * len(rows), pa.string()),
        "detail": pa.array([f"token_id {r['token_id']} is not the Counter NFT of consumer {r['consumer']} "
                            f"(its token is {known[r['consumer']]}); fix the token_id or leave it out"
                            for r in rows], pa.string()),
        "source": pa.array([r["source"] for r in rows], pa.string()),
        "record": pa.array([_record(r) for r in rows], pa.string()),
        "record_no": pa.array([r["record_no"] for r in rows], pa.int64()),
    }, schema=QUARANTINE_SCHEMA)
    return events.filter(pc.invert(bad)), quarantined


def _record(row: dict) -> str:
    """The normalised event as JSON (its raw line stays in `source` at `record_no`)."""
    return json.dumps({"event_id": row["event_id"], "provider": row["provider"], "node_id": row["node_id"],
                       "consumer": row["consumer"], "contract": row["contract"], "unit": row["unit"],
                       "quantity": row["quantity"], "timestamp": row["timestamp_ms"],
                       "token_id": int(row["token_id"])}, separators=(",", ":"))
