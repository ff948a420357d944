"""JSON lines decoding: every line is a record numbered by its line, each field's kind and text
are what a JSON library reads, and blocks, line breaks and bad bytes change nothing."""
import io
import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.events import FIELDS, INTEGER_KINDS, kind_column
from transforms import decoding
from transforms.decoding import JsonLinesDecoder

SOURCE = "in.jsonl"


def decode(data: bytes) -> list[dict]:
    tables = list(JsonLinesDecoder().read(io.BytesIO(data), SOURCE))
    return pa.concat_tables(tables).to_pylist() if tables else []


def reference_kind(record: dict, field: str) -> str:
    """The kind of a field as Python's json module reads it."""
    if field not in record or record[field] is None:
        return "NULL"
    value = record[field]
    for python_type, kind in ((bool, "BOOLEAN"), (int, "BIGINT"), (float, "DOUBLE"), (str, "VARCHAR"),
                              (dict, "OBJECT"), (list, "ARRAY")):
        if isinstance(value, python_type):
            return kind
    raise AssertionError(value)


def kind_of(row: dict, field: str) -> str:
    kind = row[kind_column(field)]
    return "BIGINT" if kind in INTEGER_KINDS else kind


json_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),  # any unicode, quotes and backslashes included
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
records = st.dictionaries(st.sampled_from(FIELDS + ("extra",)), json_values)


@settings(max_examples=150, deadline=None)
@given(st.lists(records, min_size=1, max_size=20), st.booleans(), st.booleans())
def test_kind_and_text_of_every_field_match_the_json_library(objects, ascii_only, crlf):
    end = "\r\n" if crlf else "\n"
    data = "".join(json.dumps(o, ensure_ascii=ascii_only) + end for o in objects).encode()
    rows = decode(data)
    assert [r["record_no"] for r in rows] == list(range(1, len(objects) + 1))
    for obj, row in zip(objects, rows):
        assert row["malformed"] is None
        assert row["record"].rstrip("\r\n") == json.dumps(obj, ensure_ascii=ascii_only)
        for field in FIELDS:
            assert kind_of(row, field) == reference_kind(obj, field), (field, obj)
            if isinstance(obj.get(field), str):
                assert row[field] == obj[field]
            elif isinstance(obj.get(field), int) and not isinstance(obj.get(field), bool):
                assert row[field] == str(obj[field])
            elif obj.get(field) is None:
                assert row[field] is None


def test_blank_lines_are_no_records_but_count_as_lines():
    rows = decode(b'{"event_id": "a"}\n\n\r\n{"event_id": "b"}')
    assert [(r["record_no"], r["event_id"]) for r in rows] == [(1, "a"), (4, "b")]


@pytest.mark.parametrize("line, why", [
    (b"  ", "not valid JSON"),
    (b'{"event_id": ', "not valid JSON"),
    (b"[1, 2]", "a JSON array, not an object"),
    (b"17", "a JSON ubigint, not an object"),
    (b'"text"', "a JSON varchar, not an object"),
    (b"null", "a JSON null, not an object"),
])
def test_a_line_that_is_not_an_object_is_malformed_and_keeps_its_text(line, why):
    rows = decode(b'{"event_id": "a"}\n' + line + b'\n{"event_id": "b"}\n')
    assert [r["malformed"] for r in rows] == [None, why, None]
    assert rows[1]["record"].rstrip("\r\n") == line.decode()
    assert rows[2]["event_id"] == "b" and rows[2]["record_no"] == 3


def test_an_object_after_leading_whitespace_is_an_object():
    rows = decode(b'   {"event_id": "a", "quantity": 5}\n')
    assert rows[0]["malformed"] is None and rows[0]["quantity"] == "5"


def test_a_line_that_is_not_utf8_is_malformed_and_kept_with_its_bytes_escaped():
    rows = decode(b'{"event_id": "a\xff"}\n{"event_id": "b"}\n')
    assert [r["malformed"] for r in rows] == ["not valid UTF-8 text", None]
    assert rows[0]["record"] == '{"event_id": "a\\xff"}\n' and rows[1]["event_id"] == "b"
    assert [r["record_no"] for r in rows] == [1, 2]


def test_line_numbers_continue_across_blocks_and_a_line_longer_than_a_block(monkeypatch):
    monkeypatch.setattr(decoding, "BLOCK_BYTES", 64)
    objects = [{"event_id": f"e{i}", "node_id": "n" * (200 if i == 3 else 5)} for i in range(12)]
    data = "\n".join(json.dumps(o) for o in objects).encode()  # no final line break
    rows = decode(data)
    assert [r["event_id"] for r in rows] == [o["event_id"] for o in objects]
    assert [r["record_no"] for r in rows] == list(range(1, 13))
    assert rows[3]["node_id"] == "n" * 200


def test_numbers_with_a_fraction_or_exponent_are_floats_and_wide_integers_integers():
    rows = decode(b'{"quantity": 1.0, "timestamp": 1e3, "token_id": 123456789012345678901234567890}\n')
    assert kind_of(rows[0], "quantity") == "DOUBLE"
    assert kind_of(rows[0], "timestamp") == "DOUBLE"
    assert kind_of(rows[0], "token_id") == "BIGINT"
    assert rows[0]["token_id"] == "123456789012345678901234567890"


@pytest.mark.parametrize("data", [
    b"",
    b'{"event_id": "a"}',
    b'{"event_id": "a"}\n\n{"event_id": "' + b"b" * 300 + b'"}\n{"event_id": "c"}\n',
    b"".join(b'{"event_id": "e%d"}\n' % i for i in range(40)) + b"[1]\n  \n",
])
def test_a_mapped_file_decodes_as_its_stream_does_in_blocks_of_any_size(monkeypatch, data):
    monkeypatch.setattr(decoding, "BLOCK_BYTES", 64)
    blocks = list(decoding.buffer_blocks(pa.py_buffer(data)))
    assert b"".join(bytes(b) for b in blocks) == data  # whole lines, contiguous, nothing lost
    mapped = list(JsonLinesDecoder().read_blocks(iter(blocks), SOURCE))
    streamed = list(JsonLinesDecoder().read(io.BytesIO(data), SOURCE))
    as_rows = lambda tables: pa.concat_tables(tables).to_pylist() if tables else []  # noqa: E731
    assert as_rows(mapped) == as_rows(streamed)


null_heavy_values = st.one_of(st.none(), st.integers(0, 9), st.sampled_from(['"null"', '":null"', "x\"token_id"]),
                              st.dictionaries(st.sampled_from(FIELDS), st.none(), max_size=2))
keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(['a"token_id', "xtoken_id", "\u0074oken_id", "unit "]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(keys, null_heavy_values), max_size=5), min_size=1, max_size=12),
       st.sampled_from([(",", ":"), (", ", ": ")]), st.booleans())
def test_a_key_given_twice_is_malformed_whatever_the_nulls_and_spacing(objects, separators, ascii_escapes):
    """Compact lines with `"key":null` (DuckDB reads a null as an absent key) and duplicate keys,
    nested or escaped names: malformed exactly where the JSON library sees a top-level key twice."""
    def line(pairs):
        items = [json.dumps(k, ensure_ascii=ascii_escapes) + separators[1] + json.dumps(v, separators=separators)
                 for k, v in pairs]
        return "{" + separators[0].join(items) + "}"
    data = "".join(line(pairs) + "\n" for pairs in objects).encode()
    rows = decode(data)
    for pairs, row in zip(objects, rows):
        twice = len({k for k, _ in pairs}) < len(pairs)
        assert row["malformed"] == ("a JSON object with a key given more than once" if twice else None), pairs
