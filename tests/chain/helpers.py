"""Building small settlement trees and output folders for chain tests."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account

from settlement.keccak import keccak256
from settlement.merkle import SETTLEMENT_LEAF_ENCODING, StandardMerkleTree, settlement_value
from sinks.chain.registry import advance_time
from sinks.chain.spend_permits import SpendPermit, sign_permit


def address() -> str:
    return Account.create().address


@dataclass
class Leaf:
    consumer: str
    payee: str
    cumulative: int
    proof: list


def settlement_tree(chain_id: int, registry: str, batch: int, rows) -> StandardMerkleTree:
    """Tree of (consumer, payee, cumulative) rows for `batch`."""
    values = [settlement_value(chain_id, registry, batch, c, p, amount) for c, p, amount in rows]
    return StandardMerkleTree.of(values, SETTLEMENT_LEAF_ENCODING)


def leaf(tree: StandardMerkleTree, consumer: str, payee: str) -> Leaf:
    index = tree.find(lambda v: v[3] == consumer and v[4] == payee)
    value = tree.values[index]
    return Leaf(value[3], value[4], int(value[5]), tree.get_proof(index))


def tree_total(tree: StandardMerkleTree) -> int:
    """Σ leaf values of a first batch (= its Σ amount_wei): the honest committed total."""
    return sum(int(v[5]) for v in tree.values)


def commit_tree(registry, batch: int, tree: StandardMerkleTree, total: int | None = None):
    """Commit `tree` as `batch`, with `total` (default: Σ of its leaves, honest for cumulative
    leaves when each (consumer, payee) appears in this batch only)."""
    total = tree_total(tree) if total is None else total
    return registry.commit_batch(batch, tree.root, total, len(tree.values), keccak256(b"manifest %d" % batch),
                                 f"http://127.0.0.1:8080/batches/{batch}")


def permit(registry, signer, payee: str, amount: int, *, consumer: str | None = None,
           chain_id: int | None = None, registry_address: str | None = None) -> SpendPermit:
    """A SpendPermit for `payee` signed by `signer` (by default the consumer itself)."""
    d = registry.deployment
    return sign_permit(signer, chain_id or d.chain_id, registry_address or d.registry,
                       consumer or signer.address, payee, amount)


def consent(registry, consumer_account, payee: str, amount: int) -> None:
    """The consumer signs a permit for `payee` and anyone submits it."""
    registry.submit_permit(permit(registry, consumer_account, payee, amount))


def stake_providers(registry, providers, amount: int | None = None) -> None:
    """Stake the minimum for each provider: one mint and one approval, then one stakeFor each."""
    from tests.chain.conftest import MIN_PROVIDER_STAKE

    amount = amount or MIN_PROVIDER_STAKE
    providers = list(providers)
    registry.mint(registry.sender.address, amount * len(providers))
    registry.sender.send(registry.token.functions.approve(registry.deployment.registry, amount * len(providers)),
                         "approve")
    for provider in providers:
        registry.stake(amount, provider=provider)


def stake_provider(registry, provider: str, amount: int | None = None) -> None:
    """Stake the minimum for `provider` (minted test tokens, staked by the registry's sender)."""
    from tests.chain.conftest import MIN_PROVIDER_STAKE

    registry.stake(amount or MIN_PROVIDER_STAKE, provider=provider, mint=True)


def finalize(registry, batch: int) -> None:
    """Move the chain's clock past the batch's challenge period."""
    now = registry.block_timestamp()
    claimable_at = registry.batch(batch).claimable_at
    if now < claimable_at:
        advance_time(registry.w3, claimable_at - now)


def advance_to(registry, timestamp: int) -> None:
    """Mine a block at `timestamp` (when the chain is behind it): calls (and gas estimates) see at
    least that time, and the next transaction lands at or after it."""
    now = registry.block_timestamp()
    if timestamp > now:
        advance_time(registry.w3, timestamp - now)


def claim(registry, batch: int, item: Leaf, **kwargs):
    return registry.claim(batch, item.consumer, item.payee, item.cumulative, item.proof, **kwargs)


def write_batch(out: Path, batch: int, tree: StandardMerkleTree, *, chain_id: int, registry: str) -> dict:
    """OUT/batches/<batch>/{tree.json,manifest.json} as the batch pipeline writes them (the parts
    the chain reads)."""
    folder = Path(out) / "batches" / str(batch)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tree.json").write_text(json.dumps(tree.dump(), indent=2))
    manifest = {
        "batch": batch,
        "root": "0x" + tree.root.hex(),
        "leaf_count": len(tree.values),
        "total": str(sum(int(v[5]) for v in tree.values)),
        "chain_id": chain_id,
        "registry": registry,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
