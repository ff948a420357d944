"""What `meterroot permits` does with an output folder: ingest permit files (every line ends
accepted, duplicate or quarantined) and list, per (consumer, payee), what is owed and what the
permits cover.

Permits are checked against the ledger's chain id and registry: a permit for another domain
pays nothing on this registry, so it is refused here too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from settlement.errors import UsageError
from settlement.payables import cumulative_by_pair
from settlement.permits import InvalidPermit, SignatureOracle, SpendPermit, verify_permit
from sinks.ledger_store import LedgerStore
from sinks.permit_files import PermitLine, PermitStore, read_permit_file


@dataclass
class FileCounts:
    """What became of one permit file's lines: read = accepted + duplicates + quarantined."""

    source: str
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0


@dataclass
class IngestReport:
    """The outcome of one ingest."""

    batch: int
    """The ledger's last batch: the accepted permits are stored with it."""
    files: list[FileCounts] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    """The quarantine rows written, one per refused line."""

    def total(self, name: str) -> int:
        return sum(getattr(counts, name) for counts in self.files)


@dataclass(frozen=True)
class Coverage:
    """One (consumer, payee): owed through the ledger's last batch and what permits cover."""

    consumer: str
    payee: str
    owed: int
    """Cumulative wei the consumer owes the payee through the ledger's last batch."""
    permitted: int
    """The highest stored permit's cumulative amount (0 without one)."""
    on_chain: int | None = None
    """`permitted(consumer, payee)` on the registry (None when the chain was not asked)."""

    @property
    def covered(self) -> int:
        """What a claim can collect in total: min(owed, best permit known, here or on chain)."""
        return min(self.owed, max(self.permitted, self.on_chain or 0))

    @property
    def uncovered(self) -> int:
        return self.owed - self.covered

    def to_json(self) -> dict:
        return {"consumer": self.consumer, "payee": self.payee, "owed": str(self.owed),
                "permitted": str(self.permitted),
                "permitted_on_chain": None if self.on_chain is None else str(self.on_chain),
                "covered": str(self.covered), "uncovered": str(self.uncovered)}


def _ledger(out: Path):
    store = LedgerStore(out)
    head = store.head()
    if head is None:
        raise UsageError(f"{out} has no settled batch (no {store.root / 'HEAD.json'}); run "
                         f"`meterroot batch --output {out}` first: permits are checked against its ledger")
    return store, head


def ingest(out: Path, files: list[Path], chain: SignatureOracle | None = None) -> IngestReport:
    """Verify every line of `files` and store the valid permits under OUT/permits/batch=<HEAD>/.

    A line identical to a stored permit (or to an earlier line) is a duplicate. A line that is
    no permit, or whose signature is not the consumer's for this chain and registry, is
    quarantined with its reason, file and line (OUT/permits/quarantine.jsonl).
    """
    out = Path(out)
    _, head = _ledger(out)
    store = PermitStore(out)
    seen = {_identity(p) for p in store.permits()}
    report = IngestReport(batch=head.batch)
    accepted: list[SpendPermit] = []
    for path in files:
        counts = FileCounts(str(path))
        report.files.append(counts)
        for line in read_permit_file(path):
            counts.read += 1
            error = line.error or _check(line, head.chain_id, head.registry, chain)
            if error is not None:
                counts.quarantined += 1
                report.refused.append({"reason": error.reason, "detail": str(error), "source": line.source,
                                       "line": line.line, "record": line.record})
            elif _identity(line.permit) in seen:
                counts.duplicates += 1
            else:
                counts.accepted += 1
                seen.add(_identity(line.permit))
                accepted.append(line.permit)
    store.quarantine(report.refused)
    store.add(head.batch, accepted)
    return report


def _check(line: PermitLine, chain_id: int, registry: str, chain) -> InvalidPermit | None:
    try:
        verify_permit(line.permit, chain_id, registry, chain)
    except InvalidPermit as exc:
        return exc
    return None


def _identity(permit: SpendPermit) -> tuple:
    return permit.consumer, permit.payee, permit.cumulative_amount, permit.signature


def coverage(out: Path, *, consumer: str | None = None, on_chain=None) -> list[Coverage]:
    """Per (consumer, payee) owed through the ledger's last batch, ordered by consumer and payee.

    `on_chain(consumer, payee) -> int`, when given, reads the registry's `permitted`. Pairs
    with a permit but nothing owed yet are listed too (owed 0).
    """
    out = Path(out)
    store, head = _ledger(out)
    owed = cumulative_by_pair(store.cumulative(head))
    best = PermitStore(out).highest()
    pairs = set(owed) | set(best)
    if consumer is not None:
        pairs = {pair for pair in pairs if pair[0].lower() == consumer.lower()}
    rows = []
    for pair in sorted(pairs, key=lambda pair: (pair[0].lower(), pair[1].lower())):
        permit = best.get(pair)
        rows.append(Coverage(consumer=pair[0], payee=pair[1], owed=owed.get(pair, 0),
                             permitted=permit.cumulative_amount if permit else 0,
                             on_chain=on_chain(*pair) if on_chain else None))
    return rows


def highest_permit(out: Path, consumer: str, payee: str) -> SpendPermit | None:
    """The highest permit OUT keeps for (consumer, payee), for `chain claim`."""
    return PermitStore(Path(out)).highest().get((consumer, payee))
