"""Revoking a batch on chain (governance) and rolling the output folder back with it.

The registry revokes batch B and every later one; the next commit is B again. The output folder
that built them rolls its ledger back to B - 1 (sinks.revoked_batches keeps what they held), so
`meterroot batch` rebuilds B from their events and `chain commit` commits it.

Look before sending: a batch already revoked is not sent again, and the folder is rolled back
only while its batch B is the revoked one (same root): once rebuilt, running this again changes
nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from web3.logs import DISCARD

from settlement.errors import LedgerMismatch
from sinks.chain.registry import Registry, reason_hash
from sinks.ledger_store import LedgerStore
from sinks.revoked_batches import RolledBack, revoke_locally


@dataclass(frozen=True)
class Revocation:
    """What `revoke` did."""

    batch: int
    """The first revoked batch."""
    last_batch: int
    """The last batch revoked with it."""
    reason_hash: bytes
    """keccak256 of the reason text, as recorded on chain."""
    tx_hash: str | None
    """The revokeBatch transaction (None: it was revoked already)."""
    rolled_back: RolledBack | None
    """What the output folder kept and undid (None: no folder, or nothing to undo)."""


def revoke(registry: Registry, batch: int, reason: str, *, out: Path | None = None) -> Revocation:
    local_root = _local_root(registry, batch, Path(out)) if out is not None else None
    on_chain = registry.batch(batch)
    digest = reason_hash(reason)
    if local_root is not None and on_chain.committed and on_chain.root != local_root:
        if not on_chain.revoked:
            raise LedgerMismatch(
                f"batch {batch} of {out} has root 0x{local_root.hex()} but registry "
                f"{registry.deployment.registry} committed 0x{on_chain.root.hex()}: that output folder is not "
                f"the one this registry settles; pass its own --output (or none to revoke on chain only)")
        local_root = None  # already revoked, and OUT holds the rebuilt batch: nothing to undo
    tx_hash, last = None, batch
    if not on_chain.revoked:
        latest = registry.latest_batch()
        result = registry.revoke_batch(batch, digest)
        events = registry.contract.events.BatchesRevoked().process_receipt(result.receipt, errors=DISCARD)
        tx_hash = result.tx_hash
        last = events[0]["args"]["toBatch"] if events else latest
    rolled = None
    if local_root is not None:
        record = {"batch": batch, "reason": reason, "reason_hash": "0x" + digest.hex(), "tx": tx_hash,
                  "chain_id": registry.deployment.chain_id, "registry": registry.deployment.registry,
                  "revoked_root": "0x" + on_chain.root.hex()}
        rolled = revoke_locally(Path(out), batch, record)
    return Revocation(batch, last, digest, tx_hash, rolled)


def _local_root(registry: Registry, batch: int, out: Path) -> bytes | None:
    """OUT's root of `batch` (None when OUT has not settled it); OUT must settle this registry."""
    head = LedgerStore(out).head()
    if head is None or head.batch < batch:
        return None
    d = registry.deployment
    if head.chain_id != d.chain_id or head.registry.lower() != d.registry.lower():
        raise LedgerMismatch(f"{out} settles for registry {head.registry} on chain {head.chain_id}, not registry "
                             f"{d.registry} on chain {d.chain_id}; pass the output folder of this registry")
    root = head.roots.get(batch)
    if root is None:
        return None
    return bytes.fromhex(root.removeprefix("0x"))
