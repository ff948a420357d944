"""Each quarantine reason of SPEC §1, the order they are checked in, and every file format."""
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from settlement.tariff import parse_tariff
from settlement.validation import validate
from tests.support.events import CONTRACT, PROVIDER_A, T0, TARIFF, event
from transforms.decoding import decode_stream

TARIFF_OBJ = parse_tariff(TARIFF)


def run(records, fmt="jsonl"):
    if fmt == "jsonl":
        data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()
    elif fmt == "parquet":
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(records), sink)
        data = sink.getvalue()
    else:
        data = records.encode()
    tables = list(decode_stream(io.BytesIO(data), f"in.{fmt}", fmt))
    results = [validate(t, TARIFF_OBJ) for t in tables]
    events = pa.concat_tables([r.events for r in results])
    quarantined = pa.concat_tables([r.quarantined for r in results])
    return events, quarantined


def reason_of(record):
    events, quarantined = run([record])
    assert events.num_rows + quarantined.num_rows == 1
    return quarantined.column("reason").to_pylist()[0] if quarantined.num_rows else "accepted"


@pytest.mark.parametrize("record, reason", [
    (event("ok"), "accepted"),
    ("[1, 2]", "malformed"),
    ("{\"event_id\": ", "malformed"),
    (event("n", node_id=""), "malformed"),
    (event("t", token_id=-1), "malformed"),
    ({k: v for k, v in event("m").items() if k != "consumer"}, "missing_field"),
    (event("m", unit=None), "missing_field"),
    (event("has space"), "bad_event_id"),
    (event("x" * 129), "bad_event_id"),
    (event(""), "bad_event_id"),
    (event("a", provider="0x" + "1" * 39), "bad_address"),
    (event("a", consumer="0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed"), "bad_address"),
    (event("q", quantity=0), "bad_quantity"),
    (event("q", quantity=2**63), "bad_quantity"),
    (event("q", quantity="12.0"), "bad_quantity"),
    (event("q", quantity=True), "bad_quantity"),
    (event("q", quantity=-3), "bad_quantity"),
    (event("q", quantity=str(2**63 - 1)), "accepted"),
    (event("s", timestamp=1.5), "bad_timestamp"),
    (event("s", timestamp="2026-11-24T10:00:00"), "bad_timestamp"),
    (event("s", timestamp=-1), "bad_timestamp"),
    (event("s", timestamp="2026-11-24T10:00:00+01:00"), "accepted"),
    (event("u", unit="gas"), "unknown_unit"),
])
def test_each_record_gets_its_reason(record, reason):
    assert reason_of(record) == reason


def test_first_failing_reason_wins():
    both = event("bad id", provider="0xnope", quantity=-1)
    assert reason_of(both) == "bad_event_id"
    assert reason_of(event("ok", provider="0xnope", quantity=-1)) == "bad_address"


def test_accepted_events_are_normalised():
    events, _ = run([event("n", provider=PROVIDER_A.upper().replace("0X", "0x"), quantity="007",
                           timestamp="2026-11-24T11:00:00.999+01:00", token_id="12")])
    row = events.to_pylist()[0]
    assert row["provider"] == PROVIDER_A
    assert row["quantity"] == 7 and row["timestamp_ms"] == T0 + 999
    assert row["epoch"] == T0 // 3_600_000 and int(row["token_id"]) == 12


def test_csv_rows_validate_like_json_and_a_short_row_is_malformed():
    header = "event_id,provider,node_id,consumer,contract,unit,quantity,timestamp\n"
    good = f"c1,{PROVIDER_A},n,{PROVIDER_A},{CONTRACT},request,5,{T0}\n"
    text = header + good + f"c2,{PROVIDER_A},n,,{CONTRACT},request,5,{T0}\n" + "c3,too,short\n"
    events, quarantined = run(text, fmt="csv")
    assert events.column("event_id").to_pylist() == ["c1"]
    assert sorted(quarantined.column("reason").to_pylist()) == ["malformed", "missing_field"]
    assert "c3,too,short" in quarantined.column("record").to_pylist()


def test_parquet_float_quantities_are_bad_and_integers_are_good():
    events, quarantined = run([event("p1"), {**event("p2"), "quantity": 1.0}], fmt="parquet")
    # Parquet needs one type per column: the float column makes both floats
    assert events.num_rows == 0
    assert quarantined.column("reason").to_pylist() == ["bad_quantity", "bad_quantity"]
    events, _ = run([event("p1"), event("p2")], fmt="parquet")
    assert events.column("quantity").to_pylist() == [10, 10]
