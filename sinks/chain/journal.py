"""The transaction journal: what was signed and sent, so that no intent is ever sent twice.

    OUT/chain/journal.jsonl     one JSON object a line, appended and fsynced *before* the
                                transaction it describes is broadcast

Every line names an intent (what the transaction is for: a label and a key derived from the
chain, sender, target, calldata and value), its nonce, a hash and a state:

    signed       a transaction (first attempt or a fee-bumped replacement at the same nonce) was
                 signed; the line carries the signed raw transaction, to rebroadcast it
    sent         the node accepted it (or already had it)
    rebroadcast  it had vanished from the node and was sent again
    mined        a receipt was seen in block `block`
    confirmed    the receipt was still canonical after the confirmations: the intent is done
    reverted     mined with status 0 (after the confirmations): the intent failed
    superseded   another transaction took the nonce and none of ours was mined: the intent failed

Processes that send through one journal take turns: `Sender.send` holds an exclusive lock on
`journal.jsonl.lock` (fcntl: the kernel releases it when its holder dies) from reading the
journal again to the transaction's confirmation, so two commands started at once (two
`chain deposit`s, a claim beside a commit) never sign the same intent twice or the same nonce
for two intents. A rerun reads the journal first: an unfinished intent is resumed (looked up by hash, by nonce,
rebroadcast or replaced), a confirmed one is answered from its receipt without sending. A
signed raw transaction is public once broadcast and reveals no key. A last line cut short by a
crash is ignored (it was appended before its transaction was sent, so nothing was sent for it).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from settlement.errors import UsageError

log = logging.getLogger("meterroot.chain")

JOURNAL_NAME = "journal.jsonl"

SIGNED, SENT, REBROADCAST, MINED, CONFIRMED, REVERTED, SUPERSEDED = (
    "signed", "sent", "rebroadcast", "mined", "confirmed", "reverted", "superseded")
FINAL_STATES = frozenset({CONFIRMED, REVERTED, SUPERSEDED})
"""After these an intent is finished; after a failure (reverted, superseded) it may be sent anew."""


@dataclass(frozen=True)
class Attempt:
    """One signed transaction of an intent (the first one or a replacement at the same nonce)."""

    hash: str
    """0x-prefixed transaction hash."""
    raw: str
    """0x-prefixed signed raw transaction (to rebroadcast it)."""
    max_fee: int
    """maxFeePerGas (gasPrice for a legacy transaction), wei."""
    priority_fee: int
    """maxPriorityFeePerGas (equal to max_fee for a legacy transaction), wei."""


@dataclass
class IntentRecord:
    """Everything the journal knows about the latest transaction of one intent."""

    key: str
    """Identifies the intent (chain, sender, target, calldata, value and scope)."""
    label: str
    """What it is for, as printed (e.g. "commitBatch(3)")."""
    chain_id: int
    sender: str
    nonce: int
    tx: dict
    """The unsigned transaction (fees of the first attempt): replacements are built from it."""
    attempts: list[Attempt] = field(default_factory=list)
    state: str = SIGNED
    block: int | None = None
    """Block of the last receipt seen."""
    final_hash: str | None = None
    """The attempt that was mined (confirmed or reverted)."""

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def latest(self) -> Attempt:
        return self.attempts[-1]

    def attempt(self, tx_hash: str) -> Attempt | None:
        return next((a for a in self.attempts if a.hash == tx_hash), None)


class Journal:
    """An append-only journal file.

    `path=None` keeps it in memory and forgets an intent once it is finished: it then only
    follows each transaction through its own send (replacements, rebroadcasts), as a library
    caller that deploys the same contract twice expects.
    """

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None
        self._records: dict[str, IntentRecord] = {}
        if self.path is not None and self.path.exists():
            self._load()

    @classmethod
    def for_output(cls, out: Path) -> "Journal":
        return cls(Path(out) / "chain" / JOURNAL_NAME)

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else "(in-memory journal)"

    @contextlib.contextmanager
    def turn(self):
        """This process's turn to send: an exclusive lock on the journal, held until the block
        ends, with what other processes appended meanwhile read first. In memory: no lock."""
        if self.path is None:
            yield self
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another meterroot process that is sending through %s", self.path)
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._records = {}
            if self.path.exists():
                self._load()
            yield self
        finally:
            os.close(fd)  # releases the lock

    # ---------------------------------------------------------------------------- reading
    def _load(self) -> None:
        lines = self.path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):  # cut short by a crash while appending: never sent
                    log.warning("%s: ignoring its last line, cut short (a crash while it was written)", self.path)
                    continue
                raise UsageError(f"transaction journal {self.path} line {number} is not JSON; it is "
                                 f"append-only: restore it from a backup rather than edit it") from None
            self._apply(entry, number)

    def _apply(self, entry: dict, number: int = 0) -> None:
        try:
            key, state = entry["key"], entry["state"]
            record = self._records.get(key)
            if state == SIGNED:
                if record is None or record.finished:
                    record = IntentRecord(key=key, label=entry["intent"], chain_id=entry["chain_id"],
                                          sender=entry["from"], nonce=entry["nonce"], tx=entry["tx"])
                    self._records[key] = record
                record.attempts.append(Attempt(entry["hash"], entry["raw"], entry["max_fee"],
                                               entry["priority_fee"]))
                record.state = SIGNED
                return
            if record is None:
                raise KeyError("key")
            record.state = SENT if state == REBROADCAST else state
            if "block" in entry:
                record.block = entry["block"]
            if state in (CONFIRMED, REVERTED):
                record.final_hash = entry["hash"]
            if self.path is None and record.finished:  # in memory: only what is under way
                del self._records[key]
        except (KeyError, TypeError):
            raise UsageError(f"transaction journal {self.path} line {number} is not a journal entry "
                             f"(written by another program?)") from None

    def find(self, key: str) -> IntentRecord | None:
        """The latest transaction of this intent, or None when none was ever signed."""
        return self._records.get(key)

    def unfinished(self, chain_id: int, sender: str) -> list[IntentRecord]:
        return [r for r in self._records.values()
                if not r.finished and r.chain_id == chain_id and r.sender == sender]

    # ---------------------------------------------------------------------------- writing
    def signed(self, key: str, label: str, chain_id: int, sender: str, tx: dict, attempt: Attempt,
               *, replaces: str | None = None) -> IntentRecord:
        entry = {"state": SIGNED, "intent": label, "key": key, "chain_id": chain_id, "from": sender,
                 "nonce": tx["nonce"], "hash": attempt.hash, "raw": attempt.raw, "max_fee": attempt.max_fee,
                 "priority_fee": attempt.priority_fee, "tx": _jsonable(tx)}
        if replaces:
            entry["replaces"] = replaces
        self._append(entry)
        return self._records[key]

    def note(self, record: IntentRecord, state: str, tx_hash: str | None = None, **extra) -> None:
        """Append a state change of `record` (for its latest attempt unless `tx_hash`)."""
        self._append({"state": state, "intent": record.label, "key": record.key, "nonce": record.nonce,
                      "hash": tx_hash or record.latest.hash, **extra})

    def _append(self, entry: dict) -> None:
        entry["time"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._apply(entry)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)  # on disk before the transaction is broadcast
        finally:
            os.close(fd)


def _jsonable(tx: dict) -> dict:
    """JSON of an unsigned transaction; a contract creation has no `to` (web3 gives b"")."""
    return {k: ("0x" + bytes(v).hex() if isinstance(v, (bytes, bytearray)) else v) for k, v in tx.items()
            if not (k == "to" and not v)}
