"""Properties over whole record sets: every record is counted once, and splitting usage over
several batches never changes what a pricing key costs in total."""
import json

import pyarrow as pa
from hypothesis import HealthCheck, given, settings, strategies as st

from settlement.dedup import resolve
from settlement.pricing import (SETTLED_QUANTITY_SCHEMA, aggregate_usage, price_usage,
                                settled_quantities_after)
from settlement.tariff import parse_tariff
from settlement.validation import validate
from tests.support.events import PROVIDER_A, PROVIDER_B, T0, TARIFF, event
from transforms.decoding import JsonLinesDecoder

TARIFF_OBJ = parse_tariff(TARIFF)
DECODER = JsonLinesDecoder()

good = st.builds(lambda i, p, q, dt: event(f"e{i}", provider=p, quantity=q, timestamp=T0 + dt),
                 st.integers(0, 15), st.sampled_from([PROVIDER_A, PROVIDER_B]), st.integers(1, 500),
                 st.integers(0, 3 * 3_600_000))
bad = st.sampled_from(["not json", "[1]", json.dumps(event("bad id")), json.dumps(event("q", quantity=0)),
                       json.dumps(event("u", unit="gas")), json.dumps({"event_id": "x"})])
records = st.lists(st.one_of(good, good, bad), max_size=40)


def lines_of(recs):
    return pa.array([r if isinstance(r, str) else json.dumps(r) for r in recs], pa.string())


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(recs=records)
def test_every_record_is_accepted_duplicate_or_quarantined_exactly_once(recs):
    raw = DECODER.decode(lines_of(recs), "in.jsonl", 1)
    checked = validate(raw, TARIFF_OBJ)
    deduped = resolve(checked.events)
    accepted, duplicates = deduped.accepted.num_rows, deduped.duplicates.num_rows
    quarantined = checked.quarantined.num_rows + deduped.quarantined.num_rows
    assert accepted + duplicates + quarantined == len(recs)
    keys = list(zip(deduped.accepted.column("provider").to_pylist(),
                    deduped.accepted.column("event_id").to_pylist()))
    assert len(keys) == len(set(keys))


usage_rows = st.lists(st.tuples(st.sampled_from([PROVIDER_A, PROVIDER_B]), st.integers(1, 400),
                                st.integers(0, 1)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(rows=usage_rows, cut=st.integers(0, 12))
def test_splitting_usage_over_batches_never_changes_a_keys_total_charge(rows, cut):
    def events_of(part, offset):
        recs = [event(f"k{offset + i}", provider=p, quantity=q, timestamp=T0 + e * 3_600_000)
                for i, (p, q, e) in enumerate(part)]
        return validate(DECODER.decode(lines_of(recs), "in.jsonl", 1), TARIFF_OBJ).events

    def total_by_key(lines):
        totals = {}
        for r in lines.to_pylist():
            key = (r["epoch"], r["consumer"], r["contract"], r["unit"])
            totals[key] = totals.get(key, 0) + int(r["amount_wei"])
        return totals

    whole = price_usage(aggregate_usage(events_of(rows, 0)), None, TARIFF_OBJ, 1)
    first, second = rows[:cut], rows[cut:]
    settled = SETTLED_QUANTITY_SCHEMA.empty_table()
    split_totals = {}
    for batch, part in enumerate((first, second), start=1):
        if not part:
            continue
        usage = aggregate_usage(events_of(part, 100 * batch))
        lines = price_usage(usage, settled, TARIFF_OBJ, batch)
        for key, amount in total_by_key(lines).items():
            split_totals[key] = split_totals.get(key, 0) + amount
        settled = settled_quantities_after(settled, lines)
    assert split_totals == total_by_key(whole)
