"""Probe records (SPEC §14): one JSON object per line, validated and quarantined like events.

A probe is one attempt by a prober (the gateway in front of its own upstream, or a third-party
watcher) to reach a provider's service. Every record read ends accepted, duplicate or
quarantined, with the first reason it fails in PROBE_REASONS order, exactly as SPEC §1 does for
usage events: `read = accepted + duplicates + quarantined`.

Probes are few (one per prober and provider every few seconds), so each record is checked here
in plain Python; what is computed over many of them (availability per epoch) is SQL, in
settlement/availability.py.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pyarrow as pa

from settlement.addresses import AddressError, normalize_address
from settlement.events import QUARANTINE_SCHEMA
from settlement.timestamps import TimestampError, parse_timestamp_ms

PROBE_FIELDS = ("probe_id", "provider", "node_id", "prober", "timestamp", "ok", "latency_ms")
PROBE_ADDRESS_FIELDS = ("provider", "prober")

# The order is the contract: a record gets the first reason it fails.
PROBE_REASONS = ("malformed", "missing_field", "bad_probe_id", "bad_address", "bad_ok",
                 "bad_latency", "bad_timestamp", "conflicting_duplicate")

PROBE_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_LATENCY_MS = 2**63 - 1

PROBE_SCHEMA = pa.schema([
    ("prober", pa.string()), ("probe_id", pa.string()), ("provider", pa.string()),
    ("node_id", pa.string()), ("timestamp_ms", pa.int64()), ("epoch", pa.int64()),
    ("ok", pa.bool_()), ("latency_ms", pa.int64()), ("source", pa.string()),
    ("record_no", pa.int64()),
])
"""An accepted probe, normalised: EIP-55 addresses, time in ms, its epoch."""

SETTLED_PROBE_SCHEMA = pa.schema([("batch", pa.int64())] + list(PROBE_SCHEMA))
"""What OUT/probes holds: the accepted probe with the batch that settled it."""

PROBE_KEY = ("prober", "probe_id")
"""Who ran the probe and its id: the identity of a probe (a prober numbers its own probes)."""
PROBE_CONTENT = ("provider", "node_id", "timestamp_ms", "ok", "latency_ms")
"""What makes two copies of one probe the same probe."""


class ProbeRecordError(ValueError):
    """Why one probe record is refused: `reason` (one of PROBE_REASONS) and a detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Probe:
    """One accepted probe record, normalised."""
    prober: str
    """EIP-55 address of who probed (the provider itself when its gateway probes its upstream)."""
    probe_id: str
    """The prober's id of the probe: 1-128 chars of [A-Za-z0-9._:-], unique per prober."""
    provider: str
    """EIP-55 address of the provider whose service was probed."""
    node_id: str
    """The provider's node that was probed (1-128 chars)."""
    timestamp_ms: int
    """When the probe was sent, ms since the Unix epoch."""
    ok: bool
    """The service answered within the timeout and its chain head was not stale."""
    latency_ms: int
    """Time until the answer (or until the prober gave up), integer ms >= 0."""
    source: str = ""
    """The file the record was read from."""
    record_no: int = 0
    """Its line number in that file (1-based)."""

    def key(self) -> tuple[str, str]:
        return (self.prober, self.probe_id)

    def content(self) -> tuple:
        return (self.provider, self.node_id, self.timestamp_ms, self.ok, self.latency_ms)


@dataclass(frozen=True)
class QuarantinedProbe:
    reason: str
    """One of PROBE_REASONS."""
    detail: str
    """Why, naming the field and the value."""
    source: str
    record: str
    """The raw line (without its line break), or the normalised probe as JSON for a conflict."""
    record_no: int


def check_probe(obj, source: str = "", record_no: int = 0) -> Probe:
    """The normalised probe of one decoded JSON value; ProbeRecordError with the first reason."""
    if not isinstance(obj, dict):
        raise ProbeRecordError("malformed", f"record is {type(obj).__name__}, not a JSON object")
    node_id = obj.get("node_id")
    if node_id is not None and not (isinstance(node_id, str) and 1 <= len(node_id) <= 128):
        raise ProbeRecordError("malformed", f"node_id {node_id!r} must be a string of 1 to 128 characters")
    missing = [name for name in PROBE_FIELDS if obj.get(name) is None]
    if missing:
        raise ProbeRecordError("missing_field", f"missing field(s): {', '.join(missing)}")
    probe_id = obj["probe_id"]
    if not isinstance(probe_id, str) or not PROBE_ID_PATTERN.fullmatch(probe_id):
        raise ProbeRecordError("bad_probe_id", f"probe_id {probe_id!r} must be a string of 1 to 128 "
                                               "characters from [A-Za-z0-9._:-]")
    addresses = {}
    for name in PROBE_ADDRESS_FIELDS:
        try:
            addresses[name] = normalize_address(obj[name])
        except AddressError as exc:
            raise ProbeRecordError("bad_address", f"{name}: {exc}") from None
    ok = obj["ok"]
    if not isinstance(ok, bool):
        raise ProbeRecordError("bad_ok", f"ok {ok!r} must be a JSON boolean (true or false)")
    latency = obj["latency_ms"]
    if isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= MAX_LATENCY_MS:
        raise ProbeRecordError("bad_latency", f"latency_ms {latency!r} must be an integer number of "
                                              "milliseconds from 0 to 2^63-1 (floats are invalid)")
    try:
        timestamp_ms = parse_timestamp_ms(obj["timestamp"])
    except TimestampError as exc:
        raise ProbeRecordError("bad_timestamp", f"timestamp {exc}") from None
    return Probe(prober=addresses["prober"], probe_id=probe_id, provider=addresses["provider"],
                 node_id=node_id, timestamp_ms=timestamp_ms, ok=ok, latency_ms=latency,
                 source=source, record_no=record_no)


def parse_probe_line(line: str, source: str = "", record_no: int = 0) -> Probe:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ProbeRecordError("malformed", f"line is not JSON: {exc}") from None
    return check_probe(obj, source, record_no)


def probe_json(probe: Probe) -> dict:
    """The record as a prober writes it (SPEC §14 fields; timestamp in ms)."""
    return {"probe_id": probe.probe_id, "provider": probe.provider, "node_id": probe.node_id,
            "prober": probe.prober, "timestamp": probe.timestamp_ms, "ok": probe.ok,
            "latency_ms": probe.latency_ms}


@dataclass
class ProbeSplit:
    """What became of every probe record of a run."""
    accepted: list[Probe] = field(default_factory=list)
    quarantined: list[QuarantinedProbe] = field(default_factory=list)
    duplicates: int = 0
    read: int = 0
    per_source: dict[str, dict[str, int]] = field(default_factory=dict)
    """source -> {read, accepted, duplicates, quarantined}."""

    def count(self, source: str, category: str, n: int = 1) -> None:
        entry = self.per_source.setdefault(source, dict.fromkeys(
            ("read", "accepted", "duplicates", "quarantined"), 0))
        entry[category] += n


def split_probes(files: list[tuple[str, str]], settled: dict[tuple[str, str], tuple] | None = None) -> ProbeSplit:
    """Validate and dedup the probe lines of `files` ([(source, text)], in order).

    `settled` maps the key of every probe settled by earlier batches to its content: a record
    seen again is a duplicate when identical, else only the new copy is quarantined
    (`conflicting_duplicate`). Within the run, copies of one key whose content differs are all
    quarantined, whatever their order; identical copies keep the first (SPEC §1's rule)."""
    settled = settled or {}
    split = ProbeSplit()
    valid: list[tuple[Probe, str]] = []
    for source, text in files:
        split.per_source.setdefault(source, dict.fromkeys(("read", "accepted", "duplicates", "quarantined"), 0))
        for number, line in enumerate(text.splitlines(), start=1):
            if line == "":  # an empty line is no record; a line of spaces is a malformed one
                continue
            split.read += 1
            split.count(source, "read")
            try:
                valid.append((parse_probe_line(line, source, number), line))
            except ProbeRecordError as exc:
                split.quarantined.append(QuarantinedProbe(exc.reason, exc.detail, source, line, number))
                split.count(source, "quarantined")

    contents: dict[tuple[str, str], set] = {}
    for probe, _ in valid:
        contents.setdefault(probe.key(), set()).add(probe.content())
    seen: set[tuple[str, str]] = set()
    for probe, line in valid:
        key = probe.key()
        if key in settled:
            if settled[key] == probe.content():
                split.duplicates += 1
                split.count(probe.source, "duplicates")
            else:
                split.quarantined.append(QuarantinedProbe(
                    "conflicting_duplicate",
                    f"probe {key[1]!r} of prober {key[0]} was settled earlier with other content "
                    f"{dict(zip(PROBE_CONTENT, settled[key]))}", probe.source, line, probe.record_no))
                split.count(probe.source, "quarantined")
        elif len(contents[key]) > 1:
            split.quarantined.append(QuarantinedProbe(
                "conflicting_duplicate",
                f"probe {key[1]!r} of prober {key[0]} appears with {len(contents[key])} different contents",
                probe.source, line, probe.record_no))
            split.count(probe.source, "quarantined")
        elif key in seen:
            split.duplicates += 1
            split.count(probe.source, "duplicates")
        else:
            seen.add(key)
            split.accepted.append(probe)
            split.count(probe.source, "accepted")
    return split


def probes_table(probes: list[Probe], epoch_seconds: int, batch: int) -> pa.Table:
    """Accepted probes as OUT/probes rows (SETTLED_PROBE_SCHEMA), ordered by key."""
    probes = sorted(probes, key=Probe.key)
    columns = {name: [getattr(p, name) for p in probes] for name in PROBE_SCHEMA.names if name != "epoch"}
    columns["epoch"] = [p.timestamp_ms // (1000 * epoch_seconds) for p in probes]  # SPEC §2, floor
    columns["batch"] = [batch] * len(probes)
    return pa.table({name: pa.array(columns[name], SETTLED_PROBE_SCHEMA.field(name).type)
                     for name in SETTLED_PROBE_SCHEMA.names}, schema=SETTLED_PROBE_SCHEMA)


def quarantine_table(rows: list[QuarantinedProbe], batch: int | None) -> pa.Table:
    """Quarantined probes with the events' quarantine columns (SPEC §1)."""
    rows = sorted(rows, key=lambda r: (r.source, r.record_no))
    return pa.table({
        "batch": pa.array([batch] * len(rows), pa.int64()),
        "reason": pa.array([r.reason for r in rows], pa.string()),
        "detail": pa.array([r.detail for r in rows], pa.string()),
        "source": pa.array([r.source for r in rows], pa.string()),
        "record": pa.array([r.record for r in rows], pa.string()),
        "record_no": pa.array([r.record_no for r in rows], pa.int64()),
    }, schema=QUARANTINE_SCHEMA)
