"""Building small settlement trees and output folders for chain tests."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account

from settlement.keccak import keccak256
from settlement.merkle import SETTLEMENT_LEAF_ENCODING, StandardMerkleTree, settlement_value
from sinks.chain.registry import advance_time


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


def commit_tree(registry, batch: int, tree: StandardMerkleTree, total: int = 0) -> None:
    registry.commit_batch(batch, tree.root, total, len(tree.values), keccak256(b"manifest %d" % batch))


def finalize(registry, batch: int) -> None:
    """Move the chain's clock past the batch's challenge period."""
    now = registry.block_timestamp()
    claimable_at = registry.batch(batch).claimable_at
    if now < claimable_at:
        advance_time(registry.w3, claimable_at - now)


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
