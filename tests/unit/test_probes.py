"""Probe records (SPEC §14): each quarantine reason, its order, dedup, and availability per epoch
computed exactly on hand-made probes."""
import json

import pyarrow as pa
import pytest

from settlement.availability import availability_per_epoch, nearest_rank
from settlement.probes import probes_table, split_probes

PROVIDER = "0x1000000000000000000000000000000000000001"
PROVIDER_B = "0x2000000000000000000000000000000000000002"
PROBER = "0x7000000000000000000000000000000000000007"
T0 = 1_795_514_400_000  # the start of an hour epoch
EPOCH = T0 // 3_600_000


def probe(probe_id="p1", **overrides):
    record = {"probe_id": probe_id, "provider": PROVIDER, "node_id": "n1", "prober": PROBER,
              "timestamp": T0, "ok": True, "latency_ms": 12}
    record.update(overrides)
    return record


def lines(*records):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def reason_of(record):
    split = split_probes([("in.jsonl", lines(record))])
    assert split.read == 1 and len(split.accepted) + len(split.quarantined) == 1
    return split.quarantined[0].reason if split.quarantined else "accepted"


@pytest.mark.parametrize("record, reason", [
    (probe(), "accepted"),
    (probe(timestamp="2026-11-24T10:00:00.5+02:00"), "accepted"),
    (probe(ok=False, latency_ms=2000), "accepted"),
    ("not json", "malformed"),
    ("[1, 2]", "malformed"),
    ("   ", "malformed"),
    (probe(node_id=""), "malformed"),
    (probe(node_id=7), "malformed"),
    (probe(latency_ms=None), "missing_field"),
    ({k: v for k, v in probe().items() if k != "ok"}, "missing_field"),
    (probe(probe_id="has space"), "bad_probe_id"),
    (probe(probe_id=12), "bad_probe_id"),
    (probe(provider="0x123"), "bad_address"),
    (probe(provider="0x1000000000000000000000000000000000000001".replace("1", "G", 1)), "bad_address"),
    (probe(prober="0xAbCdEf0000000000000000000000000000000000"), "bad_address"),  # fails EIP-55
    (probe(ok="true"), "bad_ok"),
    (probe(ok=1), "bad_ok"),
    (probe(latency_ms=-1), "bad_latency"),
    (probe(latency_ms=12.5), "bad_latency"),
    (probe(latency_ms="12"), "bad_latency"),
    (probe(latency_ms=True), "bad_latency"),
    (probe(timestamp=-5), "bad_timestamp"),
    (probe(timestamp=1.5e12), "bad_timestamp"),
    (probe(timestamp="2026-11-24T10:00:00"), "bad_timestamp"),  # no offset
    (probe(timestamp="1969-12-31T23:59:59Z"), "bad_timestamp"),
])
def test_each_bad_probe_is_quarantined_with_its_reason(record, reason):
    assert reason_of(record) == reason


def test_first_failing_reason_wins():
    assert reason_of(probe(probe_id="bad id", provider="nope", latency_ms=-1)) == "bad_probe_id"
    assert reason_of(probe(provider="nope", ok="yes", latency_ms=-1, timestamp=-1)) == "bad_address"
    assert reason_of(probe(ok="yes", latency_ms=-1, timestamp=-1)) == "bad_ok"
    assert reason_of(probe(latency_ms=-1, timestamp=-1)) == "bad_latency"


def test_quarantine_keeps_the_raw_line_and_a_detail_naming_the_value():
    split = split_probes([("w.jsonl", lines(probe(latency_ms=-3)))])
    q = split.quarantined[0]
    assert (q.source, q.record_no, q.reason) == ("w.jsonl", 1, "bad_latency")
    assert "-3" in q.detail and json.loads(q.record)["latency_ms"] == -3


def test_addresses_are_normalised_to_eip55():
    split = split_probes([("a", lines(probe(provider=PROVIDER.upper().replace("0X", "0x"))))])
    assert split.accepted[0].provider == PROVIDER


def test_exact_copies_are_duplicates_and_conflicting_copies_are_all_quarantined():
    text = lines(probe("a"), probe("a"), probe("b", ok=True), probe("b", ok=False), probe("c"))
    split = split_probes([("x", text), ("y", lines(probe("a")))])
    assert [p.probe_id for p in split.accepted] == ["a", "c"]
    assert split.duplicates == 2
    assert [q.reason for q in split.quarantined] == ["conflicting_duplicate"] * 2
    assert split.read == 6 == len(split.accepted) + split.duplicates + len(split.quarantined)
    assert split.per_source["x"] == {"read": 5, "accepted": 2, "duplicates": 1, "quarantined": 2}
    assert split.per_source["y"] == {"read": 1, "accepted": 0, "duplicates": 1, "quarantined": 0}


def test_a_probe_settled_earlier_is_a_duplicate_or_a_conflict():
    first = split_probes([("x", lines(probe("a"), probe("b")))])
    settled = {p.key(): p.content() for p in first.accepted}
    again = split_probes([("y", lines(probe("a"), probe("b", latency_ms=99), probe("c")))], settled)
    assert [p.probe_id for p in again.accepted] == ["c"]
    assert again.duplicates == 1
    assert [q.reason for q in again.quarantined] == ["conflicting_duplicate"]


def test_same_probe_id_from_two_probers_are_two_probes():
    other = "0x8000000000000000000000000000000000000008"
    split = split_probes([("x", lines(probe("a"), probe("a", prober=other)))])
    assert len(split.accepted) == 2


def table(records, batch=1):
    split = split_probes([("x", lines(*records))])
    assert not split.quarantined
    return probes_table(split.accepted, 3600, batch)


def test_availability_per_provider_and_epoch_is_exact():
    # provider A, epoch E: 7 probes, 5 ok with latencies 30, 10, 50, 20, 40 (sorted 10..50)
    # -> availability 5 * 10000 // 7 = 7142 bps; p50 rank ceil(5*0.5)=3 -> 30; p99 rank 5 -> 50
    a = [probe(f"a{i}", timestamp=T0 + i * 1000, latency_ms=lat) for i, lat in enumerate([30, 10, 50, 20, 40])]
    a += [probe("a-f1", timestamp=T0 + 9000, ok=False, latency_ms=2000),
          probe("a-f2", timestamp=T0 + 10_000, ok=False, latency_ms=2000)]
    # provider A, next epoch: 3 probes, none ok -> 0 bps, no latency
    a += [probe(f"n{i}", timestamp=T0 + 3_600_000 + i, ok=False, latency_ms=5) for i in range(3)]
    # provider B, epoch E: 1 of 3 ok -> 3333 bps (floor), p50 = p99 = 8
    b = [probe("b1", provider=PROVIDER_B, latency_ms=8),
         probe("b2", provider=PROVIDER_B, ok=False, latency_ms=1),
         probe("b3", provider=PROVIDER_B, ok=False, latency_ms=1)]
    rows = availability_per_epoch(table(a + b), None, batch=4).to_pylist()
    got = [(r["provider"], r["epoch"], r["probes"], r["ok_probes"], r["availability_bps"],
            r["latency_p50_ms"], r["latency_p99_ms"], r["batch"]) for r in rows]
    assert got == [
        (PROVIDER, EPOCH, 7, 5, 7142, 30, 50, 4),
        (PROVIDER, EPOCH + 1, 3, 0, 0, None, None, 4),
        (PROVIDER_B, EPOCH, 3, 1, 3333, 8, 8, 4),
    ]


def test_p99_of_a_hundred_and_one_latencies_is_the_hundredth():
    latencies = list(range(1, 102))  # 101 ok probes: rank ceil(101 * 0.99) = 100, ceil(50.5) = 51
    rows = availability_per_epoch(table([probe(f"x{i}", latency_ms=v) for i, v in enumerate(latencies)]),
                                  None, 1).to_pylist()
    assert (rows[0]["latency_p50_ms"], rows[0]["latency_p99_ms"]) == (51, 100)
    assert (nearest_rank(latencies, 50), nearest_rank(latencies, 99)) == (51, 100)
    assert rows[0]["availability_bps"] == 10000


def test_a_late_probe_revises_its_epoch_over_all_settled_probes():
    earlier = table([probe("a", ok=True), probe("b", ok=True), probe("c", ok=False, latency_ms=1)], batch=1)
    later = table([probe("d", ok=False, latency_ms=1)], batch=2)
    rows = availability_per_epoch(later, earlier, batch=2).to_pylist()
    assert [(r["probes"], r["ok_probes"], r["availability_bps"], r["batch"]) for r in rows] == [(4, 2, 5000, 2)]


def test_no_probes_no_rows():
    empty = probes_table([], 3600, 1)
    assert availability_per_epoch(empty, None, 1).num_rows == 0
    assert isinstance(empty, pa.Table)
