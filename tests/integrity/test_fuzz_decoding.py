"""Property-based fuzzing of the readers and the record rules (SPEC §1, §10) against a strict
reference parser written here from the SPEC alone (Python's json with duplicate keys refused,
strict UTF-8, the rules in their order). Over JSONL, CSV and Parquet records and whole files:
no exception escapes but a refusal of the whole file (InvalidInput), every record read ends
accepted or quarantined with the reference's reason, counts add up per file, and the accepted
values are the ones the reference reads."""
from __future__ import annotations

import calendar
import json
import re

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settlement.errors import InvalidInput
from settlement.events import FIELDS, REQUIRED_FIELDS
from tests.integrity.test_input_refusals import TARIFF_OBJ, read
from settlement.validation import validate

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MAX_Q = 2**63 - 1
ADDRESS = "0x" + "ab" * 20

# ------------------------------------------------------------------ the strict reference


class Refused(Exception):
    pass


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise Refused("duplicate key")
    return dict(pairs)


def _address(value):
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", value, re.ASCII):
        return None
    digits = value[2:]
    checksummed = to_checksum_address("0x" + digits.lower())
    if digits in (digits.lower(), digits.upper(), checksummed[2:]):
        return checksummed
    return None


def _digits(value) -> int | None:
    return int(value) if isinstance(value, str) and re.fullmatch(r"[0-9]+", value, re.ASCII) else None


def _integer(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return _digits(value)


_RFC = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
                  r"([Zz]|[+-][0-9]{2}:[0-9]{2})", re.ASCII)


def _timestamp(value) -> int | None:
    number = _integer(value)
    if number is not None:
        return number if 0 <= number <= MAX_Q else None
    if not isinstance(value, str) or not (m := _RFC.fullmatch(value)):
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    if not (1 <= mo <= 12 and 1 <= y and 1 <= d <= calendar.monthrange(y, mo)[1] and h <= 23 and mi <= 59
            and s <= 59):
        return None
    offset = m.group(8)
    shift = 0
    if offset not in ("Z", "z"):
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            return None
        shift = (1 if offset[0] == "+" else -1) * (oh * 3600 + om * 60)
    ms = (calendar.timegm((y, mo, d, h, mi, s)) - shift) * 1000 + int(((m.group(7) or ".")[1:] + "000")[:3])
    return ms if ms >= 0 else None


def reference(record) -> tuple[str, dict | None]:
    """(reason or 'accepted', normalised values) of one decoded record (a dict or not)."""
    if not isinstance(record, dict):
        return "malformed", None
    present = {k: v for k, v in record.items() if v is not None}
    node = present.get("node_id")
    if "node_id" in present and not (isinstance(node, str) and 1 <= len(node) <= 128):
        return "malformed", None
    if "token_id" in present:
        token = _integer(present["token_id"])
        if token is None or token < 0 or len(str(token)) > 38 and not isinstance(present["token_id"], str) \
                or isinstance(present["token_id"], str) and len(present["token_id"]) > 38:
            return "malformed", None
    if any(f not in present for f in REQUIRED_FIELDS):
        return "missing_field", None
    if not (isinstance(present["event_id"], str)
            and re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", present["event_id"], re.ASCII)):
        return "bad_event_id", None
    addresses = {f: _address(present[f]) for f in ("provider", "consumer", "contract")}
    if None in addresses.values():
        return "bad_address", None
    quantity = _integer(present["quantity"])
    if quantity is None or not 1 <= quantity <= MAX_Q:
        return "bad_quantity", None
    timestamp = _timestamp(present["timestamp"])
    if timestamp is None or timestamp > MAX_Q:
        return "bad_timestamp", None
    if not isinstance(present["unit"], str) or present["unit"] not in ("request", "byte"):
        return "unknown_unit", None
    token = _integer(present.get("token_id")) if "token_id" in present else None
    return "accepted", {"event_id": present["event_id"], "quantity": quantity, "timestamp_ms": timestamp,
                        "token_id": token, **addresses}


def reference_line(line: bytes) -> tuple[str, dict | None]:
    try:
        return reference(json.loads(line.decode("utf-8"), object_pairs_hook=_no_duplicates))
    except (UnicodeDecodeError, ValueError, Refused, RecursionError):
        return "malformed", None


# ------------------------------------------------------------------ what records look like

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
event_ids = st.one_of(st.from_regex(r"[A-Za-z0-9._:-]{1,12}", fullmatch=True), texts, st.just(""), st.integers())
addresses = st.sampled_from([ADDRESS, ADDRESS.upper().replace("0X", "0x"), to_checksum_address(ADDRESS),
                             "0x" + "aB" * 20, "0x123", "0x" + "g" * 40, ""])
integers = st.one_of(st.integers(min_value=-3, max_value=MAX_Q + 2), st.sampled_from([0, 1, MAX_Q, MAX_Q + 1]))
quantities = st.one_of(integers, integers.map(str), st.floats(allow_nan=False, allow_infinity=False),
                       st.sampled_from(["1.5", "1e3", " 5", "٣", "５", "+3", "-1", "007"]), texts)
rfc = st.builds(lambda y, mo, d, h, mi, s, frac, off: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{off}",
                st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24),
                st.integers(0, 60), st.integers(0, 60), st.sampled_from(["", ".5", ".123456", ".٣"]),
                st.sampled_from(["Z", "+01:00", "-14:00", "+24:00", "", "+05:61"]))
timestamps = st.one_of(integers, integers.map(str), rfc, st.floats(allow_nan=False, allow_infinity=False), texts)
units = st.sampled_from(["request", "byte", "gas", "", 3])
token_ids = st.one_of(st.none(), st.integers(min_value=-2, max_value=10**40), st.integers(0, 10**40).map(str),
                      st.just(True), texts)
nodes = st.one_of(st.just("node-1"), texts, st.just(""), st.integers(), st.just("n" * 129))


@st.composite
def records(draw):
    record = {"event_id": draw(event_ids), "provider": draw(addresses), "node_id": draw(nodes),
              "consumer": draw(addresses), "contract": draw(addresses), "unit": draw(units),
              "quantity": draw(quantities), "timestamp": draw(timestamps), "token_id": draw(token_ids)}
    for field in draw(st.sets(st.sampled_from(FIELDS), max_size=2)):
        del record[field]
    return record


def _lines(record_list) -> list[bytes]:
    return [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in record_list]


def _check(path, expected) -> int:
    """expected: (reason, values) per record in order, or {line number: (reason, values)}."""
    if not isinstance(expected, dict):
        expected = dict(enumerate(expected, start=1))
    raw, digest = read(path)
    n = raw.num_rows if raw is not None else 0
    assert n == len(expected), "a record counted nowhere"
    checked = validate(raw, TARIFF_OBJ) if n else None
    accepted = {e["record_no"]: e for e in checked.events.to_pylist()} if n else {}
    reasons = {q["record_no"]: q for q in checked.quarantined.to_pylist()} if n else {}
    assert len(accepted) + len(reasons) == n and not set(accepted) & set(reasons)
    for number, (reason, values) in expected.items():
        if reason == "accepted":
            got = accepted.get(number)
            assert got is not None, (number, reasons.get(number))
            assert {k: got[k] for k in values} == values
        else:
            assert number in reasons, (number, reason, accepted.get(number))
            assert reasons[number]["reason"] == reason, (reasons[number], reason)
            assert reasons[number]["record"], "a quarantined record lost its content"
    return n


COUNTED = {"records": 0, "files": 0}


@FUZZ
@given(st.lists(records(), min_size=1, max_size=30))
def test_jsonl_records_read_as_the_reference_reads_them(tmp_path_factory, record_list):
    lines = _lines(record_list)
    path = tmp_path_factory.mktemp("jsonl") / "usage.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    COUNTED["records"] += _check(path, [reference_line(line) for line in lines])
    COUNTED["files"] += 1


garbage = st.one_of(st.binary(max_size=40), st.sampled_from([b"[1,2]", b"{", b'{"a":1,"a":2}', b"null", b'"x"',
                                                             b"\xef\xbb\xbf{}", b"{}\r", b"\xff\xfe", b"1e400"]))


@FUZZ
@given(st.lists(st.one_of(records().map(lambda r: _lines([r])[0]), garbage), min_size=1, max_size=15),
       st.sampled_from([b"\n", b"\r\n"]))
def test_whole_jsonl_files_with_garbage_lines_every_line_accounted_for(tmp_path_factory, parts, newline):
    lines = [p.replace(b"\n", b" ").replace(b"\r", b" ") for p in parts]
    path = tmp_path_factory.mktemp("jsonlfile") / "usage.jsonl"
    path.write_bytes(newline.join(lines) + newline)
    expected = {n: reference_line(line) for n, line in enumerate(lines, start=1) if line != b""}
    COUNTED["records"] += _check(path, expected)
    COUNTED["files"] += 1


def _as_cells(record) -> dict:
    """A record as CSV cells: every value text, an absent field an empty cell."""
    return {f: "" if record.get(f) is None else (json.dumps(record[f]) if not isinstance(record[f], str)
                                                   else record[f]) for f in FIELDS}


def _cell_reference(cells) -> tuple[str, dict | None]:
    return reference({f: (v if v != "" else None) for f, v in cells.items()})


@FUZZ
@given(st.lists(records(), min_size=1, max_size=30), st.sampled_from(["csv", "parquet"]))
def test_csv_and_parquet_records_read_as_the_reference_reads_them(tmp_path_factory, record_list, fmt):
    cells = [_as_cells(r) for r in record_list]
    for row in cells:  # a CSV writer quotes, but a line break inside a cell is another matter
        for f, v in row.items():
            row[f] = v.replace("\n", " ").replace("\r", " ")
    table = pa.table({f: pa.array([row[f] for row in cells], pa.string()) for f in FIELDS})
    folder = tmp_path_factory.mktemp(fmt)
    path = folder / f"usage.{fmt}"
    if fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        table = pa.table({f: pa.array([row[f] or None for row in cells], pa.string()) for f in FIELDS})
        pq.write_table(table, path)
    COUNTED["records"] += _check(path, [_cell_reference(row) for row in cells])
    COUNTED["files"] += 1


@FUZZ
@given(st.binary(min_size=1, max_size=300), st.sampled_from(["csv", "parquet", "jsonl.gz", "csv.bz2"]))
def test_random_bytes_are_read_or_refused_whole_never_a_crash(tmp_path_factory, data, fmt):
    path = tmp_path_factory.mktemp("bytes") / f"usage.{fmt}"
    path.write_bytes(data)
    try:
        raw, _ = read(path)
    except InvalidInput as exc:
        assert str(path) in str(exc)
        return
    if raw is not None and raw.num_rows:
        checked = validate(raw, TARIFF_OBJ)
        assert checked.events.num_rows + checked.quarantined.num_rows == raw.num_rows
    COUNTED["files"] += 1


def test_zz_report_what_was_fuzzed(capsys):
    with capsys.disabled():
        print(f"\nfuzzed {COUNTED['records']} records in {COUNTED['files']} files")
