"""The real transforms on TestPipeline with inline sample events."""
import json

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from settlement.tariff import parse_tariff
from transforms.decoding import JsonLinesDecoder
from transforms.deduped_events import DedupedEvents
from transforms.settlement_lines import SettlementLines
from transforms.validated_events import ValidatedEvents
from tests.support.events import (CONSUMER, PROVIDER_A, PROVIDER_B, T0, TARIFF, event)

TARIFF_OBJ = parse_tariff(TARIFF)
OPTIONS = PipelineOptions(["--runner=FnApiRunner"])


def raw_table(records, source="in.jsonl"):
    lines = pa.array([r if isinstance(r, str) else json.dumps(r) for r in records], pa.string())
    return JsonLinesDecoder().decode(lines, source, 1)


def rows(tables, *columns):
    return [tuple(r[c] for c in columns) for t in tables for r in t.to_pylist()]


def test_validated_events_accepts_good_records_and_quarantines_each_bad_one_with_its_reason():
    records = [event("ok-1"), "{not json", event("bad id"), event("q", quantity=1.5),
               event("t", timestamp="yesterday"), event("u", unit="gas"), {"event_id": "m"}]
    with TestPipeline(options=OPTIONS) as p:
        out = (p | beam.Create([raw_table(records)]) | ValidatedEvents(TARIFF_OBJ))
        events = out.events | "EventIds" >> beam.FlatMap(lambda t: t.column("event_id").to_pylist())
        reasons = out.quarantined | "Reasons" >> beam.FlatMap(lambda t: rows([t], "record_no", "reason"))
        counts = out.counts | "SumCounts" >> beam.CombinePerKey(sum)
        assert_that(events, equal_to(["ok-1"]), label="accepted")
        assert_that(reasons, equal_to([(2, "malformed"), (3, "bad_event_id"), (4, "bad_quantity"),
                                       (5, "bad_timestamp"), (6, "unknown_unit"), (7, "missing_field")]),
                    label="quarantined")
        assert_that(counts, equal_to([(("in.jsonl", "read"), 7), (("in.jsonl", "quarantined"), 6)]),
                    label="counts")


def validated(records, source="in.jsonl"):
    from settlement.validation import validate
    return validate(raw_table(records, source), TARIFF_OBJ).events


def test_deduped_events_keeps_one_exact_copy_and_quarantines_every_conflicting_copy():
    first = validated([event("a"), event("b"), event("c", quantity=5)], "1.jsonl")
    second = validated([event("a"), event("c", quantity=6), event("b", provider=PROVIDER_B)], "2.jsonl")
    with TestPipeline(options=OPTIONS) as p:
        out = p | beam.Create([first, second]) | DedupedEvents(settled_files=[], shards=4)
        accepted = out.accepted | "Accepted" >> beam.FlatMap(
            lambda kv: rows([kv[1]], "provider", "event_id", "source"))
        conflicts = out.quarantined | "Conflicts" >> beam.FlatMap(lambda t: rows([t], "source", "reason"))
        counts = out.counts | "SumCounts" >> beam.CombinePerKey(sum)
        assert_that(accepted, equal_to([(PROVIDER_A, "a", "1.jsonl"), (PROVIDER_A, "b", "1.jsonl"),
                                        (PROVIDER_B, "b", "2.jsonl")]), label="accepted")
        assert_that(conflicts, equal_to([("1.jsonl", "conflicting_duplicate"),
                                         ("2.jsonl", "conflicting_duplicate")]), label="conflicts")
        assert_that(counts, equal_to([(("1.jsonl", "accepted"), 2), (("2.jsonl", "accepted"), 1),
                                      (("2.jsonl", "duplicates"), 1), (("1.jsonl", "quarantined"), 1),
                                      (("2.jsonl", "quarantined"), 1)]), label="counts")


def test_settlement_lines_prices_across_the_tier_boundary_and_splits_the_remainder():
    # request: per 10, tiers 0-100 @ 1000, then @ 500. A: 70 units, B: 41 units -> Q = 111.
    # cost(111) = (100 * 1000 + 11 * 500) // 10 = 10550; A gets 10550*70//111 = 6653 (r 37),
    # B gets 10550*41//111 = 3896 (r 94): one wei left, to B (largest remainder).
    accepted = validated([event("a1", quantity=70), event("b1", provider=PROVIDER_B, quantity=41)])
    with TestPipeline(options=OPTIONS) as p:
        lines = (p | beam.Create([(0, accepted)])
                 | SettlementLines(TARIFF_OBJ, batch=1, prior_quantities=None)
                 | beam.FlatMap(lambda t: rows([t], "provider", "quantity", "amount_wei",
                                               "protocol_fee_wei", "provider_wei")))
        assert_that(lines, equal_to([
            (PROVIDER_A, 70, 6653, 166, 6487),
            (PROVIDER_B, 41, 3897, 97, 3800),
        ]))


def test_settlement_lines_through_spill_files_are_the_lines_of_the_whole_usage(tmp_path):
    # the batch job spills each shard's usage; shards share pricing keys, so the merge has to sum
    # across files (A's request usage is split over shards 0 and 1, B's over 0 and 2)
    from settlement.pricing import aggregate_usage, price_usage
    shards = [(0, validated([event("a1", quantity=30), event("b1", provider=PROVIDER_B, quantity=41)])),
              (1, validated([event("a2", quantity=40), event("a3", unit="byte", quantity=7)])),
              (2, validated([event("b2", provider=PROVIDER_B, quantity=1)]))]
    columns = ("provider", "unit", "quantity", "amount_wei", "protocol_fee_wei", "provider_wei")
    whole = price_usage(aggregate_usage(pa.concat_tables([t for _, t in shards])), None, TARIFF_OBJ, 1)
    expected = rows([whole], *columns)
    assert len(expected) == 3
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    with TestPipeline(options=OPTIONS) as p:
        lines = (p | beam.Create(shards)
                 | SettlementLines(TARIFF_OBJ, batch=1, prior_quantities=None, spill_dir=str(spill_dir))
                 | beam.Map(lambda t: rows([t], *columns)))
        assert_that(lines, equal_to([expected]))  # one table, in key order
    assert len([f for f in spill_dir.iterdir() if f.suffix == ".arrow"]) == 3


def test_settlement_lines_continue_tiers_from_what_earlier_batches_settled():
    from settlement.pricing import SETTLED_QUANTITY_SCHEMA
    epoch = T0 // 3_600_000
    from settlement.events import AMOUNT_TYPE
    prior = pa.table({"epoch": [epoch], "consumer": [CONSUMER], "contract": [event("x")["contract"]],
                      "unit": ["request"], "quantity": pa.array([95], pa.int64()).cast(AMOUNT_TYPE)},
                     schema=SETTLED_QUANTITY_SCHEMA)
    accepted = validated([event("late", quantity=10)])
    with TestPipeline(options=OPTIONS) as p:
        lines = (p | beam.Create([(0, accepted)])
                 | SettlementLines(TARIFF_OBJ, batch=2, prior_quantities=prior)
                 | beam.FlatMap(lambda t: rows([t], "batch", "quantity", "amount_wei")))
        # cost(105) - cost(95) = (100000 + 2500)//10 - 95000//10 = 10250 - 9500 = 750
        assert_that(lines, equal_to([(2, 10, 750)]))
