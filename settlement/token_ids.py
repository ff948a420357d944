"""The `bad_token_id` check (SPEC §1's optional `token_id`, §13's Counter NFT): where the token id
of a consumer is known, an event naming another id is quarantined as `bad_token_id`.

The mapping comes from the chain (each consumer's `CounterNFT.countersOf(consumer)` id, read by
sinks/chain/standing.py), so it is an input of a run, like the tariff; an event without
`token_id`, or of a consumer whose id is not known, passes. `check_token_ids` is a step that
settlement.validation runs on the validated events of a block, after the SPEC §1 rules and
before dedup, so that a record failing it gets this reason only when it passed every earlier one.

The mapping file (`--token-ids FILE`, written by `meterroot chain token-ids`) is JSON, an object
`{"0xConsumer": token_id, ...}`, or CSV with the header `consumer,token_id`; token ids are integers
from 1 (a JSON integer or a string of digits). It is refused whole, naming the file and line, when
an entry is off: a bad address, an id that is not such an integer, a consumer listed twice or two
consumers given one id. Its `hash` (sha256 of the sorted canonical lines, so the same mapping in
either form hashes alike) goes into the manifest and run.json.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from settlement.addresses import AddressError, normalize_address
from settlement.errors import UsageError
from settlement.events import EVENT_SCHEMA, QUARANTINE_SCHEMA

REASON = "bad_token_id"
MAX_TOKEN_ID = 10**38 - 1  # events carry token_id as DECIMAL(38,0) (settlement.events.TOKEN_TYPE)
CSV_HEADER = ("consumer", "token_id")


class InvalidTokenIds(UsageError):
    """The consumer -> token id mapping file is unreadable or one of its entries is off (exit 2)."""


@dataclass(frozen=True)
class TokenIds:
    """A run's consumer -> Counter NFT id mapping."""

    known: Mapping[str, int]
    """EIP-55 consumer -> its token id."""
    hash: str
    """sha256 hex of the canonical form (`consumer,token_id` lines, sorted by consumer)."""
    source: str
    """The file it was read from."""


def canonical_text(known: Mapping[str, int]) -> str:
    return "".join(f"{consumer},{known[consumer]}\n" for consumer in sorted(known))


def load_token_ids(path: str | Path) -> TokenIds:
    """Read a JSON or CSV mapping file (by extension: .csv is CSV, anything else JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidTokenIds(f"token id file {path} does not exist; write it with `meterroot chain "
                              "token-ids --deployment FILE --out FILE`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidTokenIds(f"token id file {path} cannot be read: {exc}") from None
    return parse_token_ids(text, str(path), csv_form=path.suffix.lower() == ".csv")


def parse_token_ids(text: str, source: str, *, csv_form: bool) -> TokenIds:
    entries = _csv_entries(text, source) if csv_form else _json_entries(text, source)
    known: dict[str, int] = {}
    line_of_consumer: dict[str, int] = {}
    consumer_of_id: dict[int, tuple[str, int]] = {}
    for line, consumer_text, id_value in entries:
        where = f"token id file {source}, line {line}"
        try:
            consumer = normalize_address(consumer_text)
        except AddressError as exc:
            raise InvalidTokenIds(f"{where}: consumer {exc}; fix the address") from None
        token_id = _token_id(id_value, where)
        if consumer in known:
            raise InvalidTokenIds(f"{where}: consumer {consumer} is listed again (first on line "
                                  f"{line_of_consumer[consumer]}); keep one entry per consumer")
        if token_id in consumer_of_id:
            other, other_line = consumer_of_id[token_id]
            raise InvalidTokenIds(f"{where}: token id {token_id} is also given to {other} (line "
                                  f"{other_line}); a Counter NFT belongs to one consumer")
        known[consumer] = token_id
        line_of_consumer[consumer] = line
        consumer_of_id[token_id] = (consumer, line)
    digest = hashlib.sha256(canonical_text(known).encode("ascii")).hexdigest()
    return TokenIds(known=known, hash=digest, source=source)


def _token_id(value, where: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        number = None
    if number is None or not 1 <= number <= MAX_TOKEN_ID:
        raise InvalidTokenIds(f"{where}: token id {value!r} must be an integer from 1 to 10^38-1 (a JSON "
                              "integer or a string of digits; Counter NFT ids start at 1)")
    return number


def _json_entries(text: str, source: str) -> list[tuple[int, object, object]]:
    """(line, consumer, id) of each entry of `{"0xConsumer": id, ...}`, in file order."""
    try:
        pairs = json.loads(text, object_pairs_hook=lambda items: items,
                           parse_float=lambda t: float(t), parse_constant=lambda t: t)
    except json.JSONDecodeError as exc:
        raise InvalidTokenIds(f"token id file {source}, line {exc.lineno}: not valid JSON ({exc.msg}); "
                              "write an object {\"0xConsumer\": token_id, ...}") from None
    if not isinstance(pairs, list) or any(not isinstance(p, tuple) for p in pairs):
        raise InvalidTokenIds(f"token id file {source}, line 1: must be a JSON object "
                              "{\"0xConsumer\": token_id, ...}")
    entries, position = [], 0
    for consumer, value in pairs:
        found = text.find(json.dumps(consumer), position)
        if found >= 0:
            position = found + 1
        entries.append((text.count("\n", 0, max(found, position - 1)) + 1, consumer, value))
    return entries


def _csv_entries(text: str, source: str) -> list[tuple[int, object, object]]:
    """(line, consumer, id) of each row under the header `consumer,token_id`."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = tuple(cell.strip() for cell in rows[0]) if rows else ()
    if header != CSV_HEADER:
        raise InvalidTokenIds(f"token id file {source}, line 1: the header must be "
                              f"{','.join(CSV_HEADER)}, got {','.join(header) or 'nothing'}")
    entries = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue  # an empty line is no entry
        if len(row) != 2:
            raise InvalidTokenIds(f"token id file {source}, line {line}: {len(row)} cells, expected 2 "
                                  f"({','.join(CSV_HEADER)})")
        entries.append((line, row[0].strip(), row[1].strip()))
    return entries


def write_token_ids(known: Mapping[str, int], *, csv_form: bool) -> str:
    """The file form of a mapping: one entry per line, sorted by consumer (`parse_token_ids`
    reads it back)."""
    if csv_form:
        return ",".join(CSV_HEADER) + "\n" + canonical_text(known)
    lines = [f"  {json.dumps(consumer)}: {known[consumer]}" for consumer in sorted(known)]
    return "{\n" + ",\n".join(lines) + ("\n" if lines else "") + "}\n"


def check_token_ids(events: pa.Table, known: Mapping[str, int]) -> tuple[pa.Table, pa.Table]:
    """(events that pass, quarantine rows of those naming another token than their consumer's).

    `known`: EIP-55 consumer -> its Counter NFT id. Counts stay whole: every input row is in
    exactly one of the two outputs."""
    if not known or not events.num_rows:
        return events, QUARANTINE_SCHEMA.empty_table()
    consumers = pa.array(list(known), pa.string())
    ids = pa.array([str(known[c]) for c in known], pa.string()).cast(EVENT_SCHEMA.field("token_id").type)
    position = pc.index_in(events.column("consumer"), value_set=consumers)
    expected = pc.take(ids, position)  # null where the consumer's id is not known
    given = events.column("token_id")
    bad = pc.fill_null(pc.and_(pc.is_valid(given), pc.not_equal(given, expected)), False)
    if not pc.any(bad).as_py():
        return events, QUARANTINE_SCHEMA.empty_table()
    rows = events.filter(bad).to_pylist()
    quarantined = pa.table({
        "batch": pa.nulls(len(rows), pa.int64()),
        "reason": pa.array([REASON] * len(rows), pa.string()),
        "detail": pa.array([f"token_id {r['token_id']} is not the Counter NFT of consumer {r['consumer']} "
                            f"(its token is {known[r['consumer']]}); fix the token_id or leave it out"
                            for r in rows], pa.string()),
        "source": pa.array([r["source"] for r in rows], pa.string()),
        "record": pa.array([_record(r) for r in rows], pa.string()),
        "record_no": pa.array([r["record_no"] for r in rows], pa.int64()),
    }, schema=QUARANTINE_SCHEMA)
    return events.filter(pc.invert(bad)), quarantined


def _record(row: dict) -> str:
    """The normalised event as JSON (its raw line stays in `source` at `record_no`)."""
    return json.dumps({"event_id": row["event_id"], "provider": row["provider"], "node_id": row["node_id"],
                       "consumer": row["consumer"], "contract": row["contract"], "unit": row["unit"],
                       "quantity": row["quantity"], "timestamp": row["timestamp_ms"],
                       "token_id": int(row["token_id"])}, separators=(",", ":"))
