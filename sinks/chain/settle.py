"""Putting an output folder's batches on chain and claiming from them.

Commits look before they send: a batch already on chain with the same root is skipped, one on
chain with another root is refused (both roots named), so `commit` can be rerun at any time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from settlement.errors import LedgerMismatch, UsageError
from sinks.chain.batch_files import (
    LeafProof,
    LocalBatch,
    batch_numbers,
    check_batch,
    check_empty_batch,
    find_leaf,
    load_tree,
    read_batch,
)
from sinks.chain.deployment import checksum
from sinks.chain.registry import ClaimResult, Registry
from sinks.validation_gate import check_batch_validated

log = logging.getLogger("meterroot.chain")

COMMITTED = "committed"
ALREADY_COMMITTED = "already committed"


@dataclass(frozen=True)
class CommitOutcome:
    """What `commit_output` did with one batch."""

    batch: int
    """Batch number."""
    root: str
    """Its root, 0x hex."""
    action: str
    """COMMITTED or ALREADY_COMMITTED."""
    claimable_at: int
    """Unix time from which its leaves can be claimed."""
    tx_hash: str | None = None
    """The commit transaction (None when skipped)."""
    gas_used: int | None = None
    """Gas of the commit (None when skipped)."""


def commit_output(out: Path, registry: Registry, *, skip_validation: bool = False,
                  data_uri: str = "") -> list[CommitOutcome]:
    """Commit every batch of OUT not yet on chain, in order.

    Before each commit: the tree must match its manifest and name the deployment's chain id and
    registry, and the batch must have passed validation (sinks/validation_gate.py), unless
    `skip_validation`, an explicit override that is logged. `data_uri` (where OUT's batches are
    published, e.g. a `meterroot serve` URL) is emitted with each commit.
    """
    out = Path(out)
    deployment = registry.deployment
    latest = registry.latest_batch()
    outcomes = []
    for number in batch_numbers(out):
        local = read_batch(out, number)
        if number <= latest:
            outcomes.append(_already_committed(registry, local))
            continue
        if local.empty:
            check_empty_batch(local, deployment.chain_id, deployment.registry)
        else:
            check_batch(local, load_tree(local), deployment.chain_id, deployment.registry)
        if not local.empty:  # an empty batch rebuilt is the same empty batch
            _refuse_revoked_root(registry, local.number, local.root)
        _validation_gate(out, number, skip_validation)
        result = registry.commit_batch(number, local.root, local.total, local.leaf_count, local.manifest_hash,
                                       data_uri)
        outcomes.append(CommitOutcome(
            batch=number, root="0x" + local.root.hex(), action=COMMITTED,
            claimable_at=registry.batch(number).claimable_at, tx_hash=result.tx_hash,
            gas_used=result.gas_used))
    return outcomes


def _already_committed(registry: Registry, local: LocalBatch) -> CommitOutcome:
    number, root = local.number, local.root
    on_chain = registry.batch(number)
    if on_chain.root != root:
        raise LedgerMismatch(
            f"batch {number} is committed on registry {registry.deployment.registry} with root "
            f"0x{on_chain.root.hex()} but OUT has root 0x{root.hex()}; this output folder is not the one "
            f"that registry settles (use its own output folder, or deploy a new registry)")
    event = registry.committed_event(number)  # the manifest hash is emitted, not stored
    if event is not None and event.manifest_hash != local.manifest_hash:
        log.warning("batch %d: same root on chain, but its manifest hash 0x%s differs from OUT's 0x%s "
                    "(the manifest was rewritten after the commit)", number, event.manifest_hash.hex(),
                    local.manifest_hash.hex())
    return CommitOutcome(batch=number, root="0x" + root.hex(), action=ALREADY_COMMITTED,
                         claimable_at=on_chain.claimable_at)


def _refuse_revoked_root(registry: Registry, number: int, root: bytes) -> None:
    revoked = registry.batch(number)
    if revoked.revoked and revoked.root == root:
        raise LedgerMismatch(
            f"batch {number} with root 0x{root.hex()} was revoked by governance on registry "
            f"{registry.deployment.registry}; rebuild the batch before committing it again")


def _validation_gate(out: Path, number: int, skip_validation: bool) -> None:
    if skip_validation:
        log.warning("batch %d: validation gate skipped by --skip-validation (explicit override)", number)
        return
    check_batch_validated(out, number)


def leaf_proof(out: Path, number: int, consumer: str, payee: str) -> LeafProof:
    """The leaf of (consumer, payee) in OUT's batch `number` with its proof."""
    local = read_batch(Path(out), number)
    return find_leaf(local, load_tree(local), consumer, payee)


def claim_from_output(out: Path, registry: Registry, number: int, consumer: str, payee: str) -> ClaimResult:
    """Claim what `consumer` owes `payee` through batch `number`, with the proof from OUT."""
    proof = leaf_proof(out, number, consumer, payee)
    on_chain = registry.batch(number)
    if on_chain.root != proof.root:
        state = "is not committed" if not on_chain.committed else f"has root 0x{on_chain.root.hex()}"
        raise UsageError(f"batch {number} {state} on registry {registry.deployment.registry}, but OUT's "
                         f"tree has root 0x{proof.root.hex()}; commit it first with `meterroot chain commit`")
    return registry.claim(number, proof.consumer, proof.payee, proof.cumulative, proof.proof)


def status(registry: Registry, consumer: str | None = None) -> dict:
    """Batches committed (with their finality) and, for a consumer, deposits and withdrawals."""
    deployment = registry.deployment
    now = registry.block_timestamp()
    latest = registry.latest_batch()
    numbers = list(range(1, latest + 1))
    revoked_next = registry.batch(latest + 1)  # a revoked batch waits at latest + 1 to be recommitted
    batches = [registry.batch(n) for n in numbers] + ([revoked_next] if revoked_next.revoked else [])
    report = {
        "chain_id": deployment.chain_id,
        "registry": deployment.registry,
        "token": deployment.token,
        "challenge_period": deployment.challenge_period,
        "thaw_period": deployment.thaw_period,
        "block_timestamp": now,
        "latest_batch": latest,
        "batches": [
            {
                "batch": b.number,
                "root": "0x" + b.root.hex(),
                "total": str(b.total),
                "cumulative_total": str(b.cumulative_total),
                "leaf_count": b.leaf_count,
                "committed_at": b.committed_at,
                "claimable_from": b.claimable_at,
                "state": "revoked" if b.revoked else ("final" if now >= b.claimable_at else "in challenge period"),
            }
            for b in batches
        ],
    }
    if consumer is not None:
        amount, unlock_at = registry.pending_withdrawal(consumer)
        report["consumer"] = {
            "address": checksum(consumer, "--consumer"),
            "deposit": str(registry.deposit_of(consumer)),
            "pending_withdrawal": str(amount),
            "withdrawal_unlocks_at": unlock_at or None,
        }
    return report
