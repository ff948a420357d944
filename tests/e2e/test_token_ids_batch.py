"""`meterroot batch --token-ids FILE`: an event whose token_id is not its consumer's Counter NFT
is quarantined `bad_token_id` with its record kept; events without token_id, or of consumers the
mapping does not know, settle; counts add up; the mapping's digest is in the manifest and run.json."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from settlement.token_ids import load_token_ids
from sinks import layout
from tests.e2e.test_batch_cli import batch, read_json
from tests.support.events import CONSUMER, CONSUMER_2, PROVIDER_B, event, write_jsonl, write_tariff

pytestmark = pytest.mark.slow


@pytest.fixture
def usage(tmp_path):
    records = [
        event("right", token_id=7), event("wrong", token_id=8, quantity=5), event("no-token"),
        event("unknown-consumer", consumer=CONSUMER_2, token_id=99),
        event("bad-unit", unit="gas", token_id=8),        # an earlier rule's reason wins
        event("twice", token_id=8), event("twice", token_id=7),  # only the wrong copy goes: no conflict
        event("right", token_id=7),                       # an exact copy: a duplicate
        event("wrong-too", provider=PROVIDER_B, token_id="1", timestamp="2026-11-24T10:30:00Z"),
    ]
    path = write_jsonl(tmp_path / "in" / "u.jsonl", records)
    ids = tmp_path / "ids.csv"
    ids.write_text(f"consumer,token_id\n{CONSUMER},7\n")
    return path, write_tariff(tmp_path / "tariff.json"), ids, path.read_text().splitlines()


def test_events_naming_another_token_are_quarantined_bad_token_id(usage, tmp_path):
    path, tariff, ids, lines = usage
    out = tmp_path / "out"
    batch([path], tariff, out, extra=["--token-ids", ids])
    run = read_json(layout.run_path(out))
    assert (run["read"], run["accepted"], run["duplicates"], run["quarantined"]) == (9, 4, 1, 4)
    quarantine = pq.read_table(layout.quarantine_path(out, 1)).to_pylist()
    by_line = {row["record_no"]: row for row in quarantine}
    assert {n: row["reason"] for n, row in by_line.items()} == {
        2: "bad_token_id", 5: "unknown_unit", 6: "bad_token_id", 9: "bad_token_id"}
    for n, row in by_line.items():
        assert row["source"] == str(path)
        assert json.loads(row["record"])["event_id"] == json.loads(lines[n - 1])["event_id"]
    assert "token_id 8 is not the Counter NFT of consumer" in by_line[2]["detail"]
    manifest = read_json(layout.manifest_path(out, 1))
    assert manifest["token_ids_hash"] == run["token_ids_hash"] == load_token_ids(ids).hash
    assert manifest["counts"] == {k: run[k] for k in ("read", "accepted", "duplicates", "quarantined")}

    plain = tmp_path / "plain"
    batch([path], tariff, plain)  # no mapping: token ids are not checked, the digest is absent
    run = read_json(layout.run_path(plain))
    assert (run["accepted"], run["quarantined"], "token_ids_hash" in run) == (5, 3, False)
    reasons = sorted(pq.read_table(layout.quarantine_path(plain, 1)).column("reason").to_pylist())
    assert reasons == ["conflicting_duplicate", "conflicting_duplicate", "unknown_unit"]  # the two "twice"
    other = tmp_path / "other-ids.json"
    other.write_text(json.dumps({CONSUMER: 8}))
    batch([path], tariff, tmp_path / "other", extra=["--token-ids", other])
    assert read_json(layout.manifest_path(tmp_path / "other", 1))["token_ids_hash"] != manifest["token_ids_hash"]


def test_a_bad_mapping_file_exits_2_naming_its_line_and_writes_nothing(usage, tmp_path):
    path, tariff, _, _ = usage
    ids = tmp_path / "ids.csv"
    ids.write_text(f"consumer,token_id\n{CONSUMER},7\n{CONSUMER_2},seven\n")
    out = tmp_path / "out"
    refused = batch([path], tariff, out, check=2, extra=["--token-ids", ids])
    assert f"token id file {ids}, line 3" in refused.stderr and "Traceback" not in refused.stderr
    assert not out.exists()
