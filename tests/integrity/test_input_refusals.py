"""Input decoding that cannot be fooled or crashed (SPEC §1, §10), one test per failure class:
a file that cannot be read whole is refused naming it (exit 2); a record that fails a check is
quarantined with its text kept; nothing is altered, nothing counted nowhere."""
from __future__ import annotations

import bz2
import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zstandard

from pipelines.batch import settle
from settlement.errors import InvalidInput, InvalidTariff, UsageError
from settlement.tariff import parse_tariff
from settlement.validation import validate
from tests.support.events import REGISTRY, T0, TARIFF, event, write_tariff
from transforms import decoding
from transforms.read_usage import DIGESTS, _DecodeFile

GOOD = [event(f"e-{i}", quantity=i + 1) for i in range(50)]
JSONL = "".join(json.dumps(r) + "\n" for r in GOOD).encode()
TARIFF_OBJ = parse_tariff(TARIFF, "test")


def read(path: Path):
    """(raw record tables, digest) of one file, through the batch job's reader."""
    tables, digest = [], None
    for item in _DecodeFile().process(str(path)):
        if getattr(item, "tag", None) == DIGESTS:
            digest = item.value[1]
        else:
            tables.append(item)
    return (pa.concat_tables(tables) if tables else None), digest


def outcome(path: Path) -> tuple[list[dict], list[dict]]:
    """(accepted events, quarantined rows) of one file."""
    raw, _ = read(path)
    checked = validate(raw, TARIFF_OBJ)
    return checked.events.to_pylist(), checked.quarantined.to_pylist()


# --- compression: the whole stream or nothing ------------------------------------------------

@pytest.mark.parametrize("suffix, compress", [
    (".jsonl.gz", gzip.compress), (".jsonl.bz2", bz2.compress),
    (".jsonl.zst", lambda d: zstandard.ZstdCompressor().compress(d))])
@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_compressed_file_is_refused_naming_it(tmp_path, suffix, compress, damage):
    data = compress(JSONL * 20)
    data = data[: len(data) - 200] if damage == "truncated" else data[:40] + b"\x00" * 64 + data[104:]
    path = tmp_path / f"usage{suffix}"
    path.write_bytes(data)
    with pytest.raises(InvalidInput, match=str(path)):
        read(path)


def test_every_member_of_a_multi_member_gzip_and_every_zstd_frame_is_read(tmp_path):
    half = len(GOOD) // 2
    first = "".join(json.dumps(r) + "\n" for r in GOOD[:half]).encode()
    second = "".join(json.dumps(r) + "\n" for r in GOOD[half:]).encode()
    gz = tmp_path / "multi.jsonl.gz"
    gz.write_bytes(gzip.compress(first) + gzip.compress(second))
    zst = tmp_path / "multi.jsonl.zst"
    z = zstandard.ZstdCompressor()
    zst.write_bytes(z.compress(first) + z.compress(second))
    for path in (gz, zst):
        accepted, quarantined = outcome(path)
        assert len(accepted) == len(GOOD) and not quarantined


def test_compressed_csv_and_parquet_are_readable(tmp_path):
    table = pa.Table.from_pylist([{k: str(v) for k, v in r.items()} for r in GOOD])
    csv_path = tmp_path / "usage.csv"
    pacsv.write_csv(table, csv_path)
    pq_path = tmp_path / "usage.parquet"
    pq.write_table(pa.Table.from_pylist(GOOD), pq_path)
    for path, compress, suffix in ((csv_path, gzip.compress, ".gz"), (csv_path, bz2.compress, ".bz2"),
                                   (pq_path, gzip.compress, ".gz")):
        packed = path.with_name(path.name + suffix)
        packed.write_bytes(compress(path.read_bytes()))
        accepted, quarantined = outcome(packed)
        assert [e["event_id"] for e in accepted] == [r["event_id"] for r in GOOD] and not quarantined


@pytest.mark.parametrize("change", ["grown", "truncated"])
def test_a_file_changed_while_read_is_refused(tmp_path, monkeypatch, change):
    monkeypatch.setattr(decoding, "BLOCK_BYTES", 256)
    path = tmp_path / "usage.jsonl"
    path.write_bytes(JSONL * 4)
    reader = _DecodeFile().process(str(path))
    next(reader)
    if change == "grown":
        with open(path, "ab") as handle:
            handle.write(JSONL)
    else:
        os.truncate(path, 300)
    with pytest.raises(InvalidInput, match="while"):
        list(reader)


# --- text: strict UTF-8, a BOM tolerated, ASCII digits, one copy of each key -------------------

def test_invalid_utf8_is_malformed_never_altered(tmp_path):
    path = tmp_path / "usage.jsonl"
    bad = json.dumps(event("u-1")).replace("node-1", "node-\udcff", 1)
    path.write_bytes(JSONL + bad.encode("utf-8", "surrogateescape") + b"\n"
                     + json.dumps(event("u-2")).encode().replace(b"u-2", b"u-\xc3\x28") + b"\n")
    accepted, quarantined = outcome(path)
    assert len(accepted) == len(GOOD)
    assert [q["reason"] for q in quarantined] == ["malformed", "malformed"]
    assert all("\\x" in q["record"] for q in quarantined) and all("UTF-8" in q["detail"] for q in quarantined)


def test_invalid_utf8_in_a_csv_cell_is_malformed_and_in_its_header_refused(tmp_path):
    table = pa.Table.from_pylist([{k: str(v) for k, v in r.items()} for r in GOOD[:3]])
    path = tmp_path / "usage.csv"
    pacsv.write_csv(table, path)
    path.write_bytes(path.read_bytes().replace(b"node-1", b"node-\xff", 1))
    accepted, quarantined = outcome(path)
    assert len(accepted) == 2 and [q["reason"] for q in quarantined] == ["malformed"]
    header = tmp_path / "header.csv"
    pacsv.write_csv(table, header)
    header.write_bytes(header.read_bytes().replace(b"node_id", b"node\xff_id", 1))
    with pytest.raises(InvalidInput, match="header is not valid UTF-8"):
        read(header)


def test_a_byte_order_mark_is_tolerated(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + JSONL)
    accepted, quarantined = outcome(path)
    assert len(accepted) == len(GOOD) and not quarantined


@pytest.mark.parametrize("timestamp", ["２０２６-11-24T10:00:00Z", "2026-11-24T10:00:00.١٢٣Z", "0001-01-01T00:00:00+01:00",
                                       "1969-12-31T23:59:59.999Z", "2026-02-30T00:00:00Z", "9999-12-31T23:59:60Z"])
def test_non_ascii_digits_and_calendar_edges_are_bad_timestamps(tmp_path, timestamp):
    path = tmp_path / "usage.jsonl"
    path.write_text(json.dumps(event("t-1", timestamp=timestamp), ensure_ascii=False) + "\n", encoding="utf-8")
    accepted, quarantined = outcome(path)
    assert not accepted and [q["reason"] for q in quarantined] == ["bad_timestamp"]


def test_the_last_instant_of_the_calendar_is_a_time_not_a_crash(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text(json.dumps(event("t-1", timestamp="9999-12-31T23:59:59.999-14:00")) + "\n")
    accepted, _ = outcome(path)
    assert accepted[0]["timestamp_ms"] == 253402351199999


def test_non_ascii_digits_are_a_bad_quantity(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text(json.dumps(event("q-1", quantity="١٢"), ensure_ascii=False) + "\n", encoding="utf-8")
    _, quarantined = outcome(path)
    assert [q["reason"] for q in quarantined] == ["bad_quantity"]


def test_a_key_given_twice_makes_the_record_malformed(tmp_path):
    path = tmp_path / "usage.jsonl"
    line = json.dumps(event("k-1"))[:-1] + ', "quantity": 999}'
    path.write_text(line + "\n")
    _, quarantined = outcome(path)
    assert [q["reason"] for q in quarantined] == ["malformed"] and quarantined[0]["record"] == line
    assert "more than once" in quarantined[0]["detail"]


# --- columns: the schema's names or the file is refused whole ---------------------------------

@pytest.mark.parametrize("shape", ["no header", "semicolons", "other names"])
def test_a_csv_whose_columns_do_not_name_the_schema_is_refused_whole(tmp_path, shape):
    table = pa.Table.from_pylist([{k: str(v) for k, v in r.items()} for r in GOOD[:3]])
    path = tmp_path / "usage.csv"
    pacsv.write_csv(table, path)
    lines = path.read_bytes().split(b"\n")
    if shape == "no header":
        lines = lines[1:]
    elif shape == "semicolons":
        lines = [line.replace(b",", b";") for line in lines]
    else:
        lines[0] = lines[0].replace(b"consumer", b"customer")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InvalidInput, match="do not name the fields"):
        read(path)


def test_a_parquet_whose_columns_do_not_name_the_schema_is_refused_whole(tmp_path):
    path = tmp_path / "usage.parquet"
    pq.write_table(pa.Table.from_pylist(GOOD).rename_columns(
        ["id" if n == "event_id" else n for n in pa.Table.from_pylist(GOOD).column_names]), path)
    with pytest.raises(InvalidInput, match="event_id"):
        read(path)


def test_a_parquet_timestamp_with_sub_millisecond_digits_is_truncated(tmp_path):
    table = pa.Table.from_pylist([event("p-1", timestamp=0)]).drop_columns(["timestamp"])
    us = (T0 + 123) * 1000 + 999
    table = table.append_column("timestamp", pa.array([us], pa.timestamp("us", tz="UTC")))
    path = tmp_path / "usage.parquet"
    pq.write_table(table, path)
    accepted, quarantined = outcome(path)
    assert not quarantined and accepted[0]["timestamp_ms"] == T0 + 123


# --- configuration: refused before any data is read -------------------------------------------

def _tariff(tmp_path, **changes) -> Path:
    data = json.loads(json.dumps(TARIFF))
    data.update(changes)
    return write_tariff(tmp_path / "tariff.json", data)


@pytest.mark.parametrize("case", ["shards 0", "chain id 2**300", "output under a file", "staging a file",
                                  "epoch_seconds 1e16", "39-digit price"])
def test_a_bad_configuration_value_is_refused_before_anything_is_read(tmp_path, case):
    usage = tmp_path / "usage.jsonl"
    usage.write_bytes(JSONL)
    tariff, out, shards, chain_id = _tariff(tmp_path), tmp_path / "out", 8, 31337
    if case == "shards 0":
        shards = 0
    elif case == "chain id 2**300":
        chain_id = 2**300
    elif case == "output under a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
    elif case == "staging a file":
        out.mkdir()
        (out / ".staging").write_text("x")
    elif case == "epoch_seconds 1e16":
        tariff = _tariff(tmp_path, epoch_seconds=10**16)
    else:
        prices = json.loads(json.dumps(TARIFF["prices"]))
        prices[0]["tiers"][0]["price_wei"] = "9" * 39
        tariff = _tariff(tmp_path, prices=prices)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(UsageError) as refused:
        settle([str(usage)], str(tariff), str(out), chain_id, REGISTRY, shards=shards)
    assert "Traceback" not in str(refused.value)
    if "price" in case or "epoch" in case:
        assert isinstance(refused.value, InvalidTariff)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
