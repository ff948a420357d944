"""The suites pass on a good output and each rule fails on an output crafted to break it."""
from __future__ import annotations

import json
import shutil

import pytest

from sinks.validation_records import read_record
from expectations.runner import validate_output
from expectations.suites import SUITE_NAMES
from settlement.errors import InvalidInput, UsageError
from tests.quality.conftest import (PROVIDERS, TARIFF, rewrite_json, rewrite_parquet, write_output,
                                    BatchInput, default_inputs)


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """The good output, validated once for the whole module."""
    out = write_output(tmp_path_factory.mktemp("validated") / "OUT")
    return out, validate_output(out)


def lines_file(out, batch):
    return out / "settlement_lines" / f"batch={batch}" / "part-0.parquet"


def events_file(out, batch):
    return out / "events" / f"batch={batch}" / "part-0.parquet"


def manifest_file(out, batch):
    return out / "batches" / str(batch) / "manifest.json"


def failed(report, batch):
    """{suite: [ExpectationFailure]} of one batch of a report."""
    (outcome,) = [b for b in report.batches if b.batch == batch]
    found = {}
    for failure in outcome.failures:
        found.setdefault(failure.suite, []).append(failure)
    return found


def failure_on(report, batch, suite, columns):
    matches = [f for f in failed(report, batch).get(suite, []) if f.columns == columns]
    assert matches, f"no failure of {suite} on {columns}: {failed(report, batch)}"
    return matches[0]


def test_good_output_passes_every_suite_of_every_batch(validated):
    out, report = validated
    assert report.success
    assert [b.batch for b in report.batches] == [1, 2]
    for outcome in report.batches:
        assert outcome.suites == {name: True for name in SUITE_NAMES}
        assert outcome.failures == ()


def test_validation_record_is_written_per_batch(validated):
    out, _ = validated
    record = json.loads((out / "quality" / "2" / "validation.json").read_text())
    assert record["batch"] == 2 and record["success"] is True
    assert record["suites"] == {name: True for name in SUITE_NAMES}
    assert record["validated_at"].endswith("Z")
    assert (out / record["data_docs"]).is_file()
    assert not list((out / "quality").rglob("*.tmp"))


def test_data_docs_html_exists_and_names_the_suites(validated):
    out, _ = validated
    docs = out / "quality" / "1" / "data_docs"
    index = (docs / "index.html").read_text()
    for name in SUITE_NAMES:
        assert (docs / "expectations" / f"{name}.html").is_file()
        assert name in index
    assert "accepted_events" in (out / "quality" / "index.html").read_text()


def test_second_run_validates_only_batches_without_a_passing_record(validated, tmp_path):
    out = tmp_path / "OUT"
    shutil.copytree(validated[0], out)
    assert validate_output(out).batches == ()
    rewrite_json(manifest_file(out, 2), lambda m: m.update(created_by="someone else"))
    assert [b.batch for b in validate_output(out).batches] == [2]


def test_altered_amount_fails_the_split_and_the_total(good_output):
    rewrite_parquet(lines_file(good_output, 2),
                    lambda rows: [dict(rows[0], amount_wei=rows[0]["amount_wei"] + 1)] + rows[1:])
    report = validate_output(good_output, [2])
    assert not report.success
    assert report.failed == [2]
    split = failure_on(report, 2, "settlement_lines", "split_difference_wei")
    assert split.partial_unexpected_list == [1]
    total = failure_on(report, 2, "batch_totals", "manifest_total, lines_total")
    manifest_total = int(json.loads(manifest_file(good_output, 2).read_text())["total"])
    assert total.partial_unexpected_list == [(manifest_total, manifest_total + 1)]
    assert read_record(good_output, 2).success is False


def test_duplicate_line_key_fails_uniqueness(good_output):
    rewrite_parquet(lines_file(good_output, 1), lambda rows: rows + [rows[3]])
    report = validate_output(good_output, [1])
    unique = failure_on(report, 1, "settlement_lines", "batch, epoch, consumer, contract, provider, unit")
    assert unique.unexpected_count == 2


def test_missing_line_fails_line_coverage_and_total(good_output):
    rewrite_parquet(lines_file(good_output, 1), lambda rows: rows[1:])
    report = validate_output(good_output, [1])
    missing = failure_on(report, 1, "settlement_lines", "line_batch")
    assert missing.unexpected_count == 1
    assert failure_on(report, 1, "batch_totals", "manifest_total, lines_total")


def test_oversized_quarantine_fails_only_the_share_and_a_higher_ceiling_passes(good_output):
    extra = 4
    bad = {"reason": "missing_field", "detail": "no provider", "source": "input-2.jsonl", "record": "{}"}
    from tests.quality.conftest import QUARANTINE_SCHEMA, write_parquet
    write_parquet(good_output / "quarantine" / "batch=2" / "part-0.parquet", [dict(bad, batch=2)] * extra,
                  QUARANTINE_SCHEMA)

    def more_quarantined(manifest):
        for figures in [manifest["counts"], *manifest["inputs"]]:
            figures["read"] += extra
            figures["quarantined"] += extra
    rewrite_json(manifest_file(good_output, 2), more_quarantined)

    report = validate_output(good_output, [2])
    assert {s for s, ok in report.batches[0].suites.items() if not ok} == {"batch_totals"}
    share = failure_on(report, 2, "batch_totals", "quarantine_share")
    assert share.partial_unexpected_list == [pytest.approx(4 / 18)]
    assert validate_output(good_output, [2], max_quarantine_share=0.25).success


EVENT_DEFECTS = {
    "provider, provider_eip55": lambda e: dict(e, provider=e["provider"].lower()),
    "quantity": lambda e: dict(e, quantity=0),
    "timestamp_epoch": lambda e: dict(e, timestamp_ms=e["timestamp_ms"] + 86_400_000),
    "unit": lambda e: dict(e, unit="teraflop"),
    "missing_fields": lambda e: dict(e, node_id=None),
}


def test_each_bad_event_fails_its_own_expectation(good_output):
    """One defect per row (not-EIP-55, zero quantity, timestamp outside the epochs, unknown
    unit, missing field): each expectation reports exactly its row."""
    defects = list(EVENT_DEFECTS.values())
    rewrite_parquet(events_file(good_output, 2),
                    lambda rows: [change(row) for change, row in zip(defects, rows)] + rows[len(defects):])
    report = validate_output(good_output, [2])
    for columns in EVENT_DEFECTS:
        assert failure_on(report, 2, "accepted_events", columns).unexpected_count == 1, columns
    assert failure_on(report, 2, "accepted_events", "missing_fields").partial_unexpected_list == ["node_id"]


def test_duplicate_event_key_fails_uniqueness(good_output):
    rewrite_parquet(events_file(good_output, 2), lambda rows: rows + [dict(rows[0], node_id="other")])
    report = validate_output(good_output, [2])
    assert failure_on(report, 2, "accepted_events", "provider, event_id").unexpected_count == 2


def test_event_settled_by_an_earlier_batch_fails(good_output):
    first = []
    rewrite_parquet(events_file(good_output, 1), lambda rows: first.append(rows[0]) or rows)
    rewrite_parquet(events_file(good_output, 2), lambda rows: rows[:-1] + [dict(first[0], batch=2)])
    report = validate_output(good_output, [2])
    assert failure_on(report, 2, "accepted_events", "settled_in_batch").partial_unexpected_list == [1]


def test_counts_that_do_not_add_up_fail(good_output):
    rewrite_json(manifest_file(good_output, 1), lambda m: m["counts"].update(read=m["counts"]["read"] + 1))
    report = validate_output(good_output, [1])
    failure = failure_on(report, 1, "input_counts", "unaccounted")
    assert failure.offending_rows == [{"scope": "manifest counts", "unaccounted": 1}]


def test_leaf_count_and_root_must_match_the_tree(good_output):
    rewrite_json(manifest_file(good_output, 1), lambda m: m.update(leaf_count=m["leaf_count"] + 1))
    report = validate_output(good_output, [1])
    assert failure_on(report, 1, "batch_totals", "manifest_leaf_count, tree_leaf_count")


def test_edited_leaf_amount_breaks_root_and_payables(good_output):
    def edit(tree):
        value = tree["values"][0]["value"]
        value[5] = str(int(value[5]) + 1)
    rewrite_json(good_output / "batches" / "1" / "tree.json", edit)
    report = validate_output(good_output, [1])
    assert failure_on(report, 1, "batch_totals", "manifest_root, recomputed_root")
    assert failure_on(report, 1, "payables", "tree_cumulative, expected_cumulative").unexpected_count == 1


def test_wrong_fee_split_fails_even_when_parts_add_up(good_output):
    def shift(rows):
        row = next(r for r in rows if r["provider_wei"] > 0)
        rows[rows.index(row)] = dict(row, protocol_fee_wei=row["protocol_fee_wei"] + 1,
                                     provider_wei=row["provider_wei"] - 1)
        return rows
    rewrite_parquet(lines_file(good_output, 1), shift)
    report = validate_output(good_output, [1])
    assert failure_on(report, 1, "settlement_lines", "protocol_fee_wei, expected_protocol_fee_wei")
    assert not any(f.columns == "split_difference_wei" for f in failed(report, 1)["settlement_lines"])


def test_a_provider_owed_nothing_in_the_tree_fails_payables(good_output):
    def add_leaf(tree):
        extra = json.loads(json.dumps(tree["values"][0]))
        extra["value"][4] = PROVIDERS[0] if extra["value"][4] != PROVIDERS[0] else PROVIDERS[1]
        extra["value"][3] = "0x" + "ab" * 20
        tree["values"].append(extra)
    rewrite_json(good_output / "batches" / "2" / "tree.json", add_leaf)
    report = validate_output(good_output, [2])
    assert failure_on(report, 2, "payables", "expected_cumulative").unexpected_count == 1


def test_unknown_batch_is_a_usage_error(good_output):
    with pytest.raises(InvalidInput, match="batch 7 does not exist"):
        validate_output(good_output, [7])


def test_corrupt_parquet_is_named(good_output):
    events_file(good_output, 1).write_bytes(b"not parquet")
    with pytest.raises(InvalidInput, match="part-0.parquet"):
        validate_output(good_output, [1])
    assert not (good_output / "quality" / "1" / "validation.json").exists()


def test_quarantine_ceiling_must_be_a_share(good_output):
    with pytest.raises(UsageError, match="between 0 and 1"):
        validate_output(good_output, max_quarantine_share=5)


def test_missing_recorded_tariff_asks_for_one(good_output):
    (good_output / "ledger" / "tariff.json").unlink()
    with pytest.raises(UsageError, match="pass --tariff"):
        validate_output(good_output)


def test_batch_priced_with_another_tariff_fails_the_tariff_check(tmp_path):
    other = dict(TARIFF, version="test-2")
    out = write_output(tmp_path / "OUT", [BatchInput(default_inputs()[0].events[:20])], tariff_data=other)
    rewrite_json(out / "ledger" / "tariff.json", lambda t: t.update(version="test-1") or t.pop("hash", None))
    report = validate_output(out, [1])
    assert failure_on(report, 1, "batch_totals", "manifest_tariff_hash, tariff_hash")
