"""The settlement batches of an output folder (OUT/batches/<B>/{tree.json,manifest.json}).

What goes on chain for batch B: its tree's root, the manifest's total and leaf count, and the
keccak256 of the manifest file's bytes. Leaves name their chain id, registry and batch: a tree
built for another registry would commit a root nobody can claim from, so it is refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_utils import to_checksum_address

from settlement.errors import InvalidTree, UsageError
from settlement.keccak import keccak256
from settlement.merkle import (
    SETTLEMENT_LEAF_ENCODING,
    StandardMerkleTree,
    hash_leaf,
)

# Positions in a settlement leaf value: [chainId, registry, batch, consumer, payee, cumulative].
CHAIN_ID, REGISTRY, BATCH, CONSUMER, PAYEE, CUMULATIVE = range(6)
ZERO_ROOT = bytes(32)


@dataclass(frozen=True)
class LocalBatch:
    """One batch of an output folder, as it would be committed."""

    number: int
    """Batch number (the folder name)."""
    root: bytes
    """Merkle root from the manifest."""
    total: int
    """Σ amount_wei of the batch (manifest `total`)."""
    leaf_count: int
    """Leaves in its tree (manifest `leaf_count`)."""
    manifest_hash: bytes
    """keccak256 of manifest.json's bytes."""
    chain_id: int | None
    """Chain id the manifest says the batch is for (None if it does not say)."""
    registry: str | None
    """Registry the manifest says the batch is for (None if it does not say)."""
    folder: Path
    """OUT/batches/<B>."""

    @property
    def empty(self) -> bool:
        """A batch that settled only free usage: no tree, the zero root (nothing to claim)."""
        return self.root == ZERO_ROOT


@dataclass(frozen=True)
class LeafProof:
    """A leaf of a batch with what `claim` needs."""

    batch: int
    """Batch number."""
    value: list
    """The leaf value as dumped: [chainId, registry, batch, consumer, payee, cumulative] strings."""
    leaf: bytes
    """Its leaf hash."""
    proof: list[bytes]
    """Sibling hashes from the leaf up to the root."""
    root: bytes
    """The tree's root."""

    @property
    def consumer(self) -> str:
        return self.value[CONSUMER]

    @property
    def payee(self) -> str:
        return self.value[PAYEE]

    @property
    def cumulative(self) -> int:
        return int(self.value[CUMULATIVE])

    def to_json(self) -> dict:
        return {
            "batch": self.batch,
            "value": self.value,
            "leaf": "0x" + self.leaf.hex(),
            "proof": ["0x" + node.hex() for node in self.proof],
            "root": "0x" + self.root.hex(),
        }


def batch_numbers(out: Path) -> list[int]:
    """Batch numbers present under OUT/batches, ascending; they must be 1, 2, ..., N."""
    folder = Path(out) / "batches"
    if not folder.is_dir():
        raise UsageError(f"{folder} does not exist; run `meterroot batch --output {out}` first")
    numbers = sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    settled = _ledger_head_batch(Path(out))
    if settled is not None:  # beyond HEAD: the remains of a run killed before its commit
        numbers = [n for n in numbers if n <= settled]
    if numbers != list(range(1, len(numbers) + 1)):
        raise UsageError(f"the batches in {folder} are {numbers}; they must be numbered 1, 2, ... without gaps")
    return numbers


def _ledger_head_batch(out: Path) -> int | None:
    """The last batch the ledger committed (OUT/ledger/HEAD.json); folders past it are not
    batches. None when OUT has no ledger (batches written by another tool or by hand)."""
    head = out / "ledger" / "HEAD.json"
    if not head.exists():
        return None
    try:
        return int(json.loads(head.read_text())["batch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{head} is unreadable ({exc}); restore OUT/ledger from a backup") from None


def read_batch(out: Path, number: int) -> LocalBatch:
    folder = Path(out) / "batches" / str(number)
    path = folder / "manifest.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"batch {number} has no manifest: {path} is missing") from None
    try:
        manifest = json.loads(raw)
        return LocalBatch(
            number=number,
            root=_bytes32(manifest["root"]),
            total=int(manifest["total"]),
            leaf_count=int(manifest["leaf_count"]),
            manifest_hash=keccak256(raw),
            chain_id=int(manifest["chain_id"]) if manifest.get("chain_id") is not None else None,
            registry=manifest.get("registry"),
            folder=folder,
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path} is not a meterroot batch manifest ({type(exc).__name__}: {exc})") from None


def load_tree(batch: LocalBatch) -> StandardMerkleTree:
    if batch.empty:
        raise UsageError(f"batch {batch.number} settled only free usage: it has no tree and no leaves, so "
                         f"nothing was owed in it; try the last batch that billed them")
    path = batch.folder / "tree.json"
    try:
        return StandardMerkleTree.load(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UsageError(f"batch {batch.number} has no tree: {path} is missing") from None
    except json.JSONDecodeError as exc:
        raise InvalidTree(f"{path} is not JSON: {exc}") from None


def check_batch(batch: LocalBatch, tree: StandardMerkleTree, chain_id: int, registry: str) -> None:
    """Refuse a batch whose tree does not match its manifest or names another chain or registry.

    Recomputes every leaf and node (`validate`), so what is committed is what can be claimed.
    """
    registry = to_checksum_address(registry)
    if tuple(tree.leaf_encoding) != SETTLEMENT_LEAF_ENCODING:
        raise InvalidTree(f"batch {batch.number}: tree leaf encoding {list(tree.leaf_encoding)} is not the "
                          f"settlement encoding {list(SETTLEMENT_LEAF_ENCODING)}")
    _check_target(batch, chain_id, registry)
    registry_lower = registry.lower()  # not checksummed per leaf: EIP-55 costs a hash each
    for value in tree.values:
        if int(value[CHAIN_ID]) != chain_id:
            raise UsageError(f"batch {batch.number}: leaf {value} names chain id {value[CHAIN_ID]} but the "
                             f"deployment is on chain id {chain_id}; rebuild it with --chain-id {chain_id}")
        if value[REGISTRY].lower() != registry_lower:
            raise UsageError(f"batch {batch.number}: leaf {value} names registry {value[REGISTRY]} but the "
                             f"deployment's registry is {registry}; rebuild it with --registry {registry}")
        if int(value[BATCH]) != batch.number:
            raise InvalidTree(f"batch {batch.number}: leaf {value} names batch {value[BATCH]}")
    if tree.root != batch.root:
        raise InvalidTree(f"batch {batch.number}: tree root 0x{tree.root.hex()} differs from the manifest "
                          f"root 0x{batch.root.hex()}")
    if len(tree.values) != batch.leaf_count:
        raise InvalidTree(f"batch {batch.number}: the tree has {len(tree.values)} leaves, the manifest "
                          f"says {batch.leaf_count}")
    tree.validate()


def check_empty_batch(batch: LocalBatch, chain_id: int, registry: str) -> None:
    """Refuse an empty batch (zero root) whose manifest claims a total or leaves, or names another
    chain or registry: the registry commits a zero root only with a zero total and no leaves."""
    if batch.total != 0 or batch.leaf_count != 0:
        raise InvalidTree(f"batch {batch.number} has the zero root but its manifest says total {batch.total} "
                          f"and {batch.leaf_count} leaves; a batch that owes anything has a tree (rebuild it)")
    _check_target(batch, chain_id, to_checksum_address(registry))


def _check_target(batch: LocalBatch, chain_id: int, registry: str) -> None:
    """The manifest names the deployment's chain id and (checksummed) registry, or says nothing."""
    if batch.chain_id is not None and batch.chain_id != chain_id:
        raise UsageError(f"batch {batch.number} was built for chain id {batch.chain_id} but the deployment "
                         f"is on chain id {chain_id}; rebuild it with --chain-id {chain_id}")
    if batch.registry is not None and to_checksum_address(batch.registry) != registry:
        raise UsageError(f"batch {batch.number} was built for registry {to_checksum_address(batch.registry)} "
                         f"but the deployment's registry is {registry}; rebuild it with --registry {registry}")


def find_leaf(batch: LocalBatch, tree: StandardMerkleTree, consumer: str, payee: str) -> LeafProof:
    """The leaf of (consumer, payee) in a batch's tree, with its proof."""
    consumer, payee = to_checksum_address(consumer), to_checksum_address(payee)
    wanted = (consumer.lower(), payee.lower())
    try:
        index = tree.find(lambda v: (v[CONSUMER].lower(), v[PAYEE].lower()) == wanted)
    except KeyError:
        raise UsageError(f"batch {batch.number} has no leaf for consumer {consumer} and payee {payee}: "
                         f"nothing was owed in that batch; try the last batch that billed them") from None
    value = tree.values[index]
    return LeafProof(batch=batch.number, value=list(value),
                     leaf=hash_leaf(tree.leaf_encoding, value),
                     proof=tree.get_proof(index), root=tree.root)


def _bytes32(text: str) -> bytes:
    value = bytes.fromhex(text[2:] if text.startswith("0x") else text)
    if len(value) != 32:
        raise ValueError(f"root {text} is not 32 bytes")
    return value

