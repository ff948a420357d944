"""Validation of raw records (SPEC §1): each record gets the first reason it fails, in order.

Columnar: every rule is a pyarrow.compute mask over the whole block. Python runs only over the
few distinct addresses (EIP-55 needs keccak), the distinct RFC 3339 strings, and the rows that
fail (to word their detail). Where the run has a consumer -> Counter NFT mapping, `bad_token_id`
(settlement.token_ids) follows SPEC §1's rules here, before dedup, so every engine (Beam batch and
stream, Flink) applies it alike.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from settlement.addresses import AddressError, normalize_address
from settlement.events import (ADDRESS_FIELDS, EVENT_SCHEMA, FIELDS, INTEGER_KINDS, KIND_MISSING,
                               KIND_STRING, QUARANTINE_SCHEMA, REQUIRED_FIELDS,
                               kind_column)
from settlement.tariff import ANY_CONTRACT, Tariff
from settlement.timestamps import TimestampError, parse_rfc3339_ms
from settlement.token_ids import TokenIds, check_token_ids

EVENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
MAX_INT64_TEXT = str(2**63 - 1)


@dataclass
class Validated:
    events: pa.Table
    """Records that passed every rule, normalised (settlement.events.EVENT_SCHEMA)."""
    quarantined: pa.Table
    """Records that failed one, with reason and detail (QUARANTINE_SCHEMA, batch null)."""


def _kind(raw: pa.Table, field: str) -> pa.Array:
    return raw.column(kind_column(field)).combine_chunks()


def _text(raw: pa.Table, field: str) -> pa.Array:
    return raw.column(field).combine_chunks()


def _is(kind: pa.Array, *kinds: str) -> pa.Array:
    """Whether each kind is one of `kinds`; on dictionary-encoded kinds (settlement.events.
    KIND_TYPE) only the dictionary is compared."""
    wanted = pa.array(kinds, pa.string())
    if pa.types.is_dictionary(kind.type):
        return pc.take(pc.is_in(kind.dictionary, wanted), kind.indices)
    return pc.is_in(kind, wanted)


def _digits(text: pa.Array) -> pa.Array:
    """Whether each text is one or more ASCII decimal digits (false for null)."""
    return pc.fill_null(pc.ascii_is_decimal(text), False)


def _all(value: bool, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.bool_()), n)


def _int_text_ok(kind: pa.Array, text: pa.Array, low: int) -> tuple[pa.Array, pa.Array]:
    """(ok, canonical digits) for an integer field given as a JSON integer or a digit string,
    within low..2^63-1, compared as text so nothing wider than int64 is ever cast."""
    digits_ok = _digits(text)
    usable = pc.and_(_is(kind, *INTEGER_KINDS, KIND_STRING), digits_ok)
    stripped = pc.fill_null(text, "")
    if pc.any(pc.starts_with(stripped, "0")).as_py():
        stripped = pc.utf8_ltrim(stripped, "0")
    length = pc.binary_length(stripped)  # the characters of the digit strings that matter
    in_range = pc.or_(pc.less(length, 19),
                      pc.and_(pc.equal(length, 19), pc.less_equal(stripped, MAX_INT64_TEXT)))
    if low > 0:
        in_range = pc.and_(in_range, pc.greater(length, 0))
    empty = pc.equal(length, 0)
    canonical = pc.if_else(empty, "0", stripped) if pc.any(empty).as_py() else stripped
    return pc.fill_null(pc.and_(usable, in_range), False), canonical


def _map_distinct(column: pa.Array, fn) -> tuple[pa.Array, pa.Array]:
    """Apply `fn(text) -> value | raises ValueError` to each distinct value once.
    Returns (mapped values, ok mask)."""
    encoded = pc.dictionary_encode(column)
    mapped, ok = [], []
    for text in encoded.dictionary.to_pylist():
        try:
            mapped.append(fn(text))
            ok.append(True)
        except ValueError:
            mapped.append(None)
            ok.append(False)
    indices = encoded.indices
    values = pc.take(pa.array(mapped), indices)
    oks = pc.fill_null(pc.take(pa.array(ok, pa.bool_()), indices), False)
    return values, oks


class _Rules:
    """The rules of SPEC §1 over one block, in order; `first_failure` holds each row's reason."""

    def __init__(self, raw: pa.Table, tariff: Tariff):
        self.raw = raw
        self.tariff = tariff
        self.n = raw.num_rows
        self.reason = pa.nulls(self.n, pa.string())
        self.normalised: dict[str, pa.Array] = {}

    def fail(self, reason: str, mask: pa.Array) -> None:
        self.reason = pc.if_else(pc.and_(pc.is_null(self.reason), mask), reason, self.reason)

    def run(self) -> None:
        raw, n = self.raw, self.n
        # malformed: not an object, or an optional/untyped field of the wrong shape.
        malformed = pc.is_valid(raw.column("malformed").combine_chunks())
        node_kind = _kind(raw, "node_id")
        node_length = pc.fill_null(pc.utf8_length(_text(raw, "node_id")), 0)
        node_bad = pc.and_(pc.invert(_is(node_kind, KIND_MISSING)),
                           pc.or_(pc.invert(_is(node_kind, KIND_STRING)),
                                  pc.or_(pc.equal(node_length, 0), pc.greater(node_length, 128))))
        token_kind = _kind(raw, "token_id")
        token_text = _text(raw, "token_id")
        token_digits = pc.and_(_digits(token_text), pc.less_equal(pc.fill_null(pc.binary_length(token_text), 0), 38))
        token_given = pc.invert(_is(token_kind, KIND_MISSING))
        token_bad = pc.and_(token_given, pc.invert(pc.and_(
            pc.or_(_is(token_kind, *INTEGER_KINDS), _is(token_kind, KIND_STRING)), token_digits)))
        self.fail("malformed", pc.or_(malformed, pc.or_(node_bad, token_bad)))

        missing = _all(False, n)
        for field in REQUIRED_FIELDS:
            missing = pc.or_(missing, _is(_kind(raw, field), KIND_MISSING))
        self.fail("missing_field", missing)

        event_ok = pc.and_(_is(_kind(raw, "event_id"), KIND_STRING),
                           pc.fill_null(pc.match_substring_regex(_text(raw, "event_id"), EVENT_ID_PATTERN), False))
        self.fail("bad_event_id", pc.invert(event_ok))

        addresses_ok = _all(True, n)
        for field in ADDRESS_FIELDS:
            text, is_string = _text(raw, field), _is(_kind(raw, field), KIND_STRING)
            if not pc.all(is_string).as_py():
                text = pc.if_else(is_string, text, pa.scalar(None, pa.string()))
            values, ok = _map_distinct(text, normalize_address)
            self.normalised[field] = values
            addresses_ok = pc.and_(addresses_ok, ok)
        self.fail("bad_address", pc.invert(addresses_ok))

        quantity_ok, quantity = _int_text_ok(_kind(raw, "quantity"), _text(raw, "quantity"), low=1)
        self.fail("bad_quantity", pc.invert(quantity_ok))
        self.normalised["quantity"] = quantity

        self._timestamps()
        self._units()
        token_text = pc.if_else(token_given, pc.utf8_ltrim(pc.fill_null(_text(raw, "token_id"), ""), "0"),
                                pa.scalar(None, pa.string()))
        self.normalised["token_id"] = pc.if_else(pc.equal(token_text, ""), "0", token_text)

    def _timestamps(self) -> None:
        kind, text = _kind(self.raw, "timestamp"), _text(self.raw, "timestamp")
        digits_ok, digits = _int_text_ok(kind, text, low=0)
        is_digits = _digits(text)
        rfc_candidates = pc.and_(_is(kind, KIND_STRING), pc.invert(is_digits))
        ms_from_digits = pc.cast(pc.if_else(digits_ok, digits, "0"), pa.int64())
        if pc.any(rfc_candidates).as_py():
            rfc_text = pc.if_else(rfc_candidates, text, pa.scalar(None, pa.string()))
            rfc_ms, rfc_ok = _map_distinct(rfc_text, parse_rfc3339_ms)
            ms = pc.if_else(rfc_ok, pc.cast(rfc_ms, pa.int64()), ms_from_digits)
            ok = pc.or_(digits_ok, rfc_ok)
        else:
            ms, ok = ms_from_digits, digits_ok
        self.fail("bad_timestamp", pc.invert(ok))
        self.normalised["timestamp_ms"] = ms

    def _units(self) -> None:
        unit_kind, unit = _kind(self.raw, "unit"), _text(self.raw, "unit")
        star_units = [r.unit for r in self.tariff.prices if r.contract == ANY_CONTRACT]
        exact = [f"{r.contract}|{r.unit}" for r in self.tariff.prices if r.contract != ANY_CONTRACT]
        priced = pc.fill_null(pc.is_in(unit, pa.array(star_units, pa.string())), False)
        if exact:
            pair = pc.binary_join_element_wise(self.normalised["contract"], unit, "|")
            priced = pc.or_(priced, pc.fill_null(pc.is_in(pair, pa.array(exact, pa.string())), False))
        self.fail("unknown_unit", pc.invert(pc.and_(_is(unit_kind, KIND_STRING), priced)))


def _detail(reason: str, row: dict, tariff: Tariff) -> str:
    """Human-readable why, for one quarantined raw row (slow path: only failing rows)."""
    def value(field):
        return row.get(field)

    def kind(field):
        return row.get(kind_column(field))

    if reason == "malformed":
        if row.get("malformed"):
            return f"record is {row['malformed']}"
        if kind("node_id") != KIND_MISSING and (kind("node_id") != KIND_STRING
                                                or not 1 <= len(value("node_id") or "") <= 128):
            return f"node_id {value('node_id')!r} must be a string of 1 to 128 characters"
        return (f"token_id {value('token_id')!r} must be a non-negative integer of at most 38 digits "
                "(a JSON integer or a string of digits)")
    if reason == "missing_field":
        missing = [f for f in REQUIRED_FIELDS if kind(f) == KIND_MISSING]
        return f"missing field(s): {', '.join(missing)}"
    if reason == "bad_event_id":
        return (f"event_id {value('event_id')!r} must be a string of 1 to 128 characters from "
                "[A-Za-z0-9._:-]")
    if reason == "bad_address":
        for field in ADDRESS_FIELDS:
            try:
                if kind(field) != KIND_STRING:
                    raise AddressError(f"{value(field)!r} is not a string")
                normalize_address(value(field))
            except AddressError as exc:
                return f"{field}: {exc}"
    if reason == "bad_quantity":
        return (f"quantity {value('quantity')!r} must be an integer from 1 to 2^63-1 (a JSON integer "
                "or a string of decimal digits; floats are invalid)")
    if reason == "bad_timestamp":
        text = value("timestamp")
        if kind("timestamp") == KIND_STRING and not (text or "").isdigit():
            try:
                parse_rfc3339_ms(text)
            except TimestampError as exc:
                return f"timestamp {exc}"
        return (f"timestamp {text!r} must be integer milliseconds since 1970 (up to 2^63-1) or "
                "RFC 3339 with an explicit offset; floats are invalid")
    if reason == "unknown_unit":
        return (f"unit {value('unit')!r} has no price for contract {value('contract')} in tariff "
                f"{tariff.version!r}; add a price for it or fix the unit")
    return reason


def render_record(row: dict) -> str:
    """The raw line without its line break, or where none was kept (CSV and Parquet rows), the
    JSON of its fields."""
    if row.get("record") is not None:
        return row["record"].removesuffix("\n").removesuffix("\r")
    return json.dumps({f: row.get(f) for f in FIELDS if row.get(kind_column(f)) != KIND_MISSING},
                      separators=(",", ":"))


def validate(raw: pa.Table, tariff: Tariff, token_ids: TokenIds | None = None) -> Validated:
    """Split a block of raw records into normalised events and quarantined records; with
    `token_ids`, events naming another token than their consumer's are `bad_token_id`."""
    validated = _validate_rules(raw, tariff)
    if token_ids is None or not token_ids.known:
        return validated
    events, wrong_token = check_token_ids(validated.events, token_ids.known)
    if not wrong_token.num_rows:
        return validated
    return Validated(events, pa.concat_tables([validated.quarantined, wrong_token]))


def _validate_rules(raw: pa.Table, tariff: Tariff) -> Validated:
    rules = _Rules(raw, tariff)
    rules.run()
    failed = pc.is_valid(rules.reason)
    ok = pc.invert(failed)
    all_ok = not pc.any(failed).as_py()

    norm = rules.normalised
    timestamp_ms = norm["timestamp_ms"]
    # failed rows may hold text that does not cast: they are blanked first (and dropped below)
    quantity = norm["quantity"] if all_ok else pc.if_else(ok, norm["quantity"], "0")
    token_id = norm["token_id"] if all_ok else pc.if_else(ok, norm["token_id"], pa.scalar(None, pa.string()))
    events = pa.table({
        "provider": norm["provider"], "event_id": _text(raw, "event_id"),
        "node_id": _text(raw, "node_id"), "consumer": norm["consumer"],
        "contract": norm["contract"], "unit": _text(raw, "unit"),
        "quantity": pc.cast(quantity, pa.int64()),
        "timestamp_ms": timestamp_ms,
        "epoch": pc.divide(timestamp_ms, pa.scalar(1000 * tariff.epoch_seconds, pa.int64())),
        "token_id": pc.cast(token_id, EVENT_SCHEMA.field("token_id").type),
        "source": raw.column("source").combine_chunks(),
        "record_no": raw.column("record_no").combine_chunks(),
    }, schema=EVENT_SCHEMA)
    if all_ok:
        return Validated(events, QUARANTINE_SCHEMA.empty_table())
    events = events.filter(ok)

    bad = raw.filter(failed)
    reasons = rules.reason.filter(failed).to_pylist()
    rows = bad.to_pylist() if bad.num_rows else []
    quarantined = pa.table({
        "batch": pa.nulls(len(rows), pa.int64()),
        "reason": pa.array(reasons, pa.string()),
        "detail": pa.array([_detail(r, row, tariff) for r, row in zip(reasons, rows)], pa.string()),
        "source": pa.array([row["source"] for row in rows], pa.string()),
        "record": pa.array([render_record(row) for row in rows], pa.string()),
        "record_no": pa.array([row["record_no"] for row in rows], pa.int64()),
    }, schema=QUARANTINE_SCHEMA)
    return Validated(events, quarantined)
