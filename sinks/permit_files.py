"""Permit files (JSONL of signed SpendPermits) and the permits an output folder keeps.

A permit file has one JSON object per line, as the consumer SDK writes them (SPEC §13):

    {"consumer": "0x…", "payee": "0x…", "cumulative_amount": "1000",
     "chain_id": 31337, "registry": "0x…", "signature": "0x…"}

`cumulative_amount` is a string of decimal digits (a JSON integer is read too), the signature
the 65-byte r‖s‖v hex of the EIP-712 SpendPermit (or an ERC-1271 wallet's bytes). Blank lines
are skipped. The folder keeps, under OUT/permits/:

    batch=<B>/permits.jsonl   every valid permit ingested while B was the ledger's last batch,
                              in the same form (re-ingestable; anyone can re-check them)
    quarantine.jsonl          refused lines: {"reason", "detail", "source", "line", "record"}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from settlement.errors import InvalidInput
from settlement.permits import InvalidPermit, SpendPermit
from sinks import atomic

PERMITS = "permits"
QUARANTINE_FILE = "quarantine.jsonl"


@dataclass(frozen=True)
class PermitLine:
    """One non-blank line of a permit file."""

    source: str
    """The file it was read from."""
    line: int
    """Its line number, from 1."""
    record: str
    """The line as read, without its line break."""
    permit: SpendPermit | None
    """The parsed permit; None when the line is no permit (see `error`)."""
    error: InvalidPermit | None = None
    """Why the line is no permit."""


def read_permit_file(path: Path) -> Iterator[PermitLine]:
    """Every non-blank line of a permit file, parsed or with the reason it cannot be."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"permit file {path} cannot be read ({exc.strerror or exc}); pass an existing "
                           f"JSONL file of signed permits") from None
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            record = raw.decode("utf-8")
        except UnicodeDecodeError:
            record = raw.decode("utf-8", "backslashreplace")
            yield PermitLine(str(path), number, record, None, InvalidPermit("malformed", "the line is not UTF-8"))
            continue
        try:
            permit = SpendPermit.from_json(json.loads(record))
        except json.JSONDecodeError as exc:
            yield PermitLine(str(path), number, record, None,
                             InvalidPermit("malformed", f"the line is not JSON ({exc.msg} at column {exc.colno})"))
        except InvalidPermit as exc:
            yield PermitLine(str(path), number, record, None, exc)
        else:
            yield PermitLine(str(path), number, record, permit)


def permit_lines(permits) -> bytes:
    """JSONL bytes of permits, one per line, in the order given."""
    return b"".join(json.dumps(p.to_json(), separators=(", ", ": ")).encode() + b"\n" for p in permits)


def write_permit_file(path: Path, permits) -> None:
    """Write permits as a permit file, atomically."""
    atomic.write_bytes(Path(path), permit_lines(permits))


def _order(permit: SpendPermit) -> tuple:
    return permit.consumer.lower(), permit.payee.lower(), permit.cumulative_amount, permit.signature


@dataclass
class PermitStore:
    """OUT/permits: every valid permit ingested, by the batch that was last when it came."""

    out: Path
    _loaded: list | None = field(default=None, repr=False)

    @property
    def root(self) -> Path:
        return Path(self.out) / PERMITS

    def batch_file(self, batch: int) -> Path:
        return self.root / f"batch={batch}" / "permits.jsonl"

    def quarantine_file(self) -> Path:
        return self.root / QUARANTINE_FILE

    def files(self) -> list[Path]:
        found = [p for p in self.root.glob("batch=*/permits.jsonl") if p.parent.name[6:].isdigit()]
        return sorted(found, key=lambda p: int(p.parent.name[6:]))

    def permits(self) -> list[SpendPermit]:
        """Every stored permit. A stored line that no longer parses means the folder was edited:
        refused, naming the file and line."""
        if self._loaded is None:
            loaded = []
            for path in self.files():
                for line in read_permit_file(path):
                    if line.error is not None:
                        raise InvalidInput(f"stored permit {line.source}:{line.line} is not a permit "
                                           f"({line.error}); the file was edited: restore it from a backup")
                    loaded.append(line.permit)
            self._loaded = loaded
        return self._loaded

    def highest(self) -> dict[tuple[str, str], SpendPermit]:
        """The highest stored permit per (consumer, payee): the one that counts."""
        best: dict[tuple[str, str], SpendPermit] = {}
        for permit in self.permits():
            current = best.get(permit.key)
            if current is None or permit.cumulative_amount > current.cumulative_amount:
                best[permit.key] = permit
        return best

    def add(self, batch: int, permits: list[SpendPermit]) -> None:
        """Store new permits with `batch` (rewrites that batch's file atomically, sorted)."""
        if not permits:
            return
        path = self.batch_file(batch)
        existing = [line.permit for line in read_permit_file(path)] if path.exists() else []
        write_permit_file(path, sorted(existing + list(permits), key=_order))
        self._loaded = None

    def quarantine(self, rows: list[dict]) -> None:
        """Append refused lines to OUT/permits/quarantine.jsonl (rewritten atomically)."""
        if not rows:
            return
        path = self.quarantine_file()
        old = path.read_bytes() if path.exists() else b""
        new = b"".join(json.dumps(row, sort_keys=True).encode() + b"\n" for row in rows)
        atomic.write_bytes(path, old + new)
