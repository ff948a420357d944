"""bad_token_id: an event naming another Counter NFT than its consumer's is quarantined; no id,
or a consumer whose id is not known, passes; every row ends in one output."""
from __future__ import annotations

import io
import json

import pyarrow as pa
import pytest

from settlement.events import EVENT_SCHEMA
from settlement.tariff import parse_tariff
from settlement.token_ids import (InvalidTokenIds, check_token_ids, load_token_ids, parse_token_ids,
                                  write_token_ids)
from settlement.validation import validate
from tests.support.events import CONSUMER, CONSUMER_2, TARIFF, event
from transforms.decoding import decode_stream

ALICE, BOB, CAROL = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20


def events(rows):
    return pa.table({
        "provider": [ALICE] * len(rows), "event_id": [f"e-{i}" for i in range(len(rows))],
        "node_id": ["n"] * len(rows), "consumer": [c for c, _ in rows], "contract": [ALICE] * len(rows),
        "unit": ["request"] * len(rows), "quantity": [1] * len(rows), "timestamp_ms": [0] * len(rows),
        "epoch": [0] * len(rows), "token_id": [None if t is None else str(t) for _, t in rows],
        "source": ["f.jsonl"] * len(rows), "record_no": list(range(1, len(rows) + 1)),
    }).cast(EVENT_SCHEMA)


def test_wrong_token_is_quarantined_and_the_rest_pass():
    table = events([(ALICE, 1), (ALICE, 2), (BOB, None), (CAROL, 9), (BOB, 5)])
    passed, quarantined = check_token_ids(table, {ALICE: 1, BOB: 4})
    assert passed.column("event_id").to_pylist() == ["e-0", "e-2", "e-3"]
    assert quarantined.column("reason").to_pylist() == ["bad_token_id", "bad_token_id"]
    assert quarantined.column("record_no").to_pylist() == [2, 5]
    assert "is not the Counter NFT of consumer" in quarantined.column("detail")[0].as_py()
    assert passed.num_rows + quarantined.num_rows == table.num_rows


def test_nothing_known_passes_everything():
    table = events([(ALICE, 3)])
    assert check_token_ids(table, {})[0] == table


# ------------------------------------------------------------------- the mapping file (--token-ids)

DEAD = "0x000000000000000000000000000000000000dEaD"


def test_json_and_csv_forms_read_alike_and_hash_alike(tmp_path):
    as_json = tmp_path / "ids.json"
    as_json.write_text('{\n  "%s": 7,\n  "%s": "12"\n}\n' % (DEAD.lower(), CONSUMER))
    as_csv = tmp_path / "ids.csv"
    as_csv.write_text(f"consumer,token_id\n{CONSUMER},12\n\n{DEAD},7\n")
    a, b = load_token_ids(as_json), load_token_ids(as_csv)
    assert a.known == b.known == {DEAD: 7, CONSUMER: 12} and a.hash == b.hash
    assert parse_token_ids(write_token_ids(a.known, csv_form=False), "x", csv_form=False).known == a.known
    assert parse_token_ids(write_token_ids(a.known, csv_form=True), "x", csv_form=True).hash == a.hash
    assert load_token_ids(as_csv).hash != parse_token_ids(f"consumer,token_id\n{DEAD},8\n", "y", csv_form=True).hash


@pytest.mark.parametrize("text, csv_form, line, words", [
    ('{\n  "0x12": 1\n}', False, 2, "not 0x followed by 40 hex digits"),
    ('{\n  "%s": 1\n}' % DEAD.replace("dEaD", "DeAd"), False, 2, "EIP-55"),
    ('{\n  "%s": 0\n}' % DEAD, False, 2, "integer from 1"),
    ('{\n  "%s": 1.0\n}' % DEAD, False, 2, "integer from 1"),
    ('{\n  "%s": true\n}' % DEAD, False, 2, "integer from 1"),
    ('{\n  "%s": "-3"\n}' % DEAD, False, 2, "integer from 1"),
    ('{\n  "%s": %d\n}' % (DEAD, 10**38), False, 2, "integer from 1"),
    ('{\n  "%s": 1,\n  "%s": 2\n}' % (DEAD, DEAD.lower()), False, 3, "listed again (first on line 2)"),
    ('{\n  "%s": 1,\n  "%s": 1\n}' % (DEAD, CONSUMER), False, 3, "also given to"),
    ('[["%s", 1]]' % DEAD, False, 1, "must be a JSON object"),
    ('{\n  "%s": 1,\n' % DEAD, False, 3, "not valid JSON"),
    ("consumer,id\n", True, 1, "the header must be consumer,token_id"),
    (f"consumer,token_id\n{DEAD},1\n{CONSUMER},x\n", True, 3, "integer from 1"),
    (f"consumer,token_id\n{DEAD},1,2\n", True, 2, "3 cells"),
    (f"consumer,token_id\n{DEAD},1\nnope,2\n", True, 3, "not 0x followed"),
])
def test_a_bad_entry_refuses_the_file_naming_it_and_its_line(text, csv_form, line, words):
    with pytest.raises(InvalidTokenIds) as refused:
        parse_token_ids(text, "ids.file", csv_form=csv_form)
    assert f"token id file ids.file, line {line}:" in str(refused.value) and words in str(refused.value)


def test_a_missing_file_names_the_command_that_writes_it(tmp_path):
    with pytest.raises(InvalidTokenIds, match="chain token-ids"):
        load_token_ids(tmp_path / "absent.json")


def test_validate_applies_bad_token_id_after_the_spec_rules():
    """The order of SPEC §1: a record failing an earlier rule keeps that reason; only records that
    pass every rule are checked against the mapping."""
    tariff = parse_tariff(TARIFF, "tariff")
    lines = [event("ok", token_id=7), event("wrong", token_id=8), event("none"),
             event("other", consumer=CONSUMER_2, token_id=99), event("unit", unit="gas", token_id=8),
             event("string", token_id="0007")]
    raw = next(iter(decode_stream(_jsonl(lines), "u.jsonl", "jsonl")))
    mapping = parse_token_ids(f"consumer,token_id\n{CONSUMER},7\n", "ids.csv", csv_form=True)
    checked = validate(raw, tariff, mapping)
    assert checked.events.column("event_id").to_pylist() == ["ok", "none", "other", "string"]
    reasons = dict(zip([json.loads(r)["event_id"] for r in checked.quarantined.column("record").to_pylist()],
                       checked.quarantined.column("reason").to_pylist()))
    assert reasons == {"wrong": "bad_token_id", "unit": "unknown_unit"}
    assert checked.events.num_rows + checked.quarantined.num_rows == raw.num_rows
    assert validate(raw, tariff).quarantined.column("reason").to_pylist() == ["unknown_unit"]


def _jsonl(records):
    return io.BytesIO("".join(json.dumps(r) + "\n" for r in records).encode())
