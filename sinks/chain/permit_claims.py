"""Claims and permit submissions with the permits an output folder keeps (or a permit file).

Look before sending: a permit no higher than what the registry already holds is not sent; a
claim whose permit is not yet on chain goes as `claimWithPermit` (permit and claim in one
transaction), otherwise as `claim` on the stored permit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from settlement.errors import UsageError
from settlement.permits import InvalidPermit, SpendPermit, check_domain
from sinks.chain.deployment import checksum
from sinks.chain.registry import ClaimResult, Registry
from sinks.chain.batch_files import LeafProof
from sinks.chain.settle import leaf_proof
from sinks.permit_files import PermitStore, read_permit_file

SUBMITTED = "submitted"
ALREADY_COVERED = "already covered"


@dataclass(frozen=True)
class SubmitOutcome:
    """What `submit_permits` did with one permit."""

    permit: SpendPermit
    action: str
    """SUBMITTED, or ALREADY_COVERED (the registry holds this amount or more)."""
    permitted: int
    """`permitted(consumer, payee)` on chain after it."""
    tx_hash: str | None = None


def permits_from_file(path: Path) -> list[SpendPermit]:
    """Every permit of a permit file; a line that is no permit is refused naming file and line."""
    permits = []
    for line in read_permit_file(Path(path)):
        if line.error is not None:
            raise InvalidPermit(line.error.reason, f"{line.source}:{line.line}: {line.error}")
        permits.append(line.permit)
    if not permits:
        raise UsageError(f"permit file {path} holds no permit")
    return permits


def highest(permits, consumer: str | None = None, payee: str | None = None) -> list[SpendPermit]:
    """The highest permit per (consumer, payee), optionally of one consumer and/or payee."""
    best: dict[tuple[str, str], SpendPermit] = {}
    for permit in permits:
        if consumer is not None and permit.consumer != consumer:
            continue
        if payee is not None and permit.payee != payee:
            continue
        current = best.get(permit.key)
        if current is None or permit.cumulative_amount > current.cumulative_amount:
            best[permit.key] = permit
    return [best[key] for key in sorted(best, key=lambda k: (k[0].lower(), k[1].lower()))]


def stored_permits(out: Path) -> list[SpendPermit]:
    return PermitStore(Path(out)).permits()


def submit_permits(registry: Registry, permits: list[SpendPermit]) -> list[SubmitOutcome]:
    """Submit each permit the registry does not already cover (highest per pair only)."""
    outcomes = []
    for permit in highest(permits):
        _check_for(registry, permit)
        on_chain = registry.permitted(permit.consumer, permit.payee)
        if on_chain >= permit.cumulative_amount:
            outcomes.append(SubmitOutcome(permit, ALREADY_COVERED, on_chain))
            continue
        result = registry.submit_permit(permit)
        outcomes.append(SubmitOutcome(permit, SUBMITTED, registry.permitted(permit.consumer, permit.payee),
                                      result.tx_hash))
    return outcomes


def _check_for(registry: Registry, permit: SpendPermit) -> None:
    d = registry.deployment
    try:
        check_domain(permit, d.chain_id, d.registry)
    except InvalidPermit as exc:
        raise InvalidPermit(exc.reason, f"permit {permit.consumer} -> {permit.payee}: {exc}") from None


@dataclass(frozen=True)
class PermitClaim:
    """A claim and the permit it relied on."""

    claim: ClaimResult
    permit: SpendPermit | None
    """The permit sent with the claim (None: the registry's stored permit was used)."""
    permitted: int
    """`permitted(consumer, payee)` on chain after the claim."""


def claim_with_permits(out: Path | None, registry: Registry, number: int, consumer: str, payee: str, *,
                       permit_file: Path | None = None, proof: LeafProof | None = None) -> PermitClaim:
    """Claim (consumer, payee) of OUT's batch `number` with the best permit known.

    The permit is the highest for the pair in `permit_file`, else in OUT/permits/. When it is
    higher than the registry's, the claim carries it (`claimWithPermit`); otherwise the stored
    permit serves. With no permit anywhere, nothing can be paid: refused before sending."""
    consumer, payee = checksum(consumer, "--consumer"), checksum(payee, "--payee")
    proof = proof or leaf_proof(out, number, consumer, payee)  # given: fetched from an API (--from-api)
    on_chain = registry.batch(number)
    if on_chain.root != proof.root:
        state = "is not committed" if not on_chain.committed else f"has root 0x{on_chain.root.hex()}"
        if on_chain.revoked:
            state = "was revoked"
        raise UsageError(f"batch {number} {state} on registry {registry.deployment.registry}, but OUT's "
                         f"tree has root 0x{proof.root.hex()}; commit it first with `meterroot chain commit`")
    source = permits_from_file(permit_file) if permit_file else stored_permits(out) if out else []
    best = highest(source, consumer, payee)
    permitted = registry.permitted(consumer, payee)
    permit = best[0] if best else None
    if permit is not None:
        _check_for(registry, permit)
    if permit is not None and permit.cumulative_amount > permitted:
        result = registry.claim_with_permit(number, consumer, payee, proof.cumulative, proof.proof, permit)
    elif permitted > 0:
        permit = None
        result = registry.claim(number, consumer, payee, proof.cumulative, proof.proof)
    else:
        where = f"in {permit_file}" if permit_file else f"in {Path(out) / 'permits'}" if out else "given (--permit)"
        raise UsageError(
            f"no spend permit of {consumer} for {payee}: none {where} nor on registry "
            f"{registry.deployment.registry}, so nothing can be paid; ingest the consumer's signed permit "
            f"with `meterroot permits --output {out} --ingest FILE`, or pass --permit FILE")
    return PermitClaim(result, permit, registry.permitted(consumer, payee))
