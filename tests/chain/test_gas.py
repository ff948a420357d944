"""Gas of commitBatch and of claim at proof depth 20, on the real node; targets 100k and 120k.

Gas is deterministic for given calldata and storage, so the targets are asserted. Run with -s to
see the figures.

A depth-20 proof in an OpenZeppelin tree needs at least 2^19 + 1 leaves; MerkleProof only
hashes the leaf up its path, so a path of 20 random siblings (an unbalanced tree with the leaf at
depth 20) costs exactly what a proof of that depth in a full tree costs.
"""
from __future__ import annotations

from settlement.keccak import keccak256
from settlement.merkle import SETTLEMENT_LEAF_ENCODING, hash_leaf, process_proof, settlement_value
from tests.chain.helpers import Leaf, address, claim, finalize

COMMIT_TARGET = 100_000
CLAIM_DEPTH_20_TARGET = 120_000


def dense(label: str) -> bytes:
    """32 bytes with no zero byte: the dearest calldata (16 gas a byte instead of 4)."""
    return bytes(b | 1 for b in keccak256(label.encode()))


def test_commit_batch_gas(registry, record_property):
    # Dearest arguments: no zero byte in root or manifest hash, the largest total and leaf count.
    gas = [registry.commit_batch(n, dense(f"root {n}"), 2**128 - 1, 2**32 - 1, dense(f"manifest {n}")).gas_used
           for n in (1, 2, 3)]
    print(f"\ncommitBatch gas: batch 1 {gas[0]}, batch 2 {gas[1]}, batch 3 {gas[2]} (target {COMMIT_TARGET})")
    record_property("commit_batch_gas", gas)
    assert max(gas) <= COMMIT_TARGET


def test_claim_gas_at_proof_depth_20(registry, record_property):
    d = registry.deployment
    consumer, payee, amount = address(), address(), 987_654_321_000_000_000
    value = settlement_value(d.chain_id, d.registry, 1, consumer, payee, amount)
    proof = [dense(f"sibling {i}") for i in range(20)]
    root = process_proof(hash_leaf(SETTLEMENT_LEAF_ENCODING, value), proof)
    registry.commit_batch(1, root, amount, 2**20, dense("manifest"))
    registry.deposit_for(consumer, 2 * amount, mint=True)
    finalize(registry, 1)

    # The dearest claim: the payee holds no tokens and has collected nothing yet (two new slots).
    first = claim(registry, 1, Leaf(consumer, payee, amount, proof))
    repeat = claim(registry, 1, Leaf(consumer, payee, amount, proof))
    print(f"\nclaim gas at depth 20: first {first.gas_used}, repeated (pays nothing) {repeat.gas_used} "
          f"(target {CLAIM_DEPTH_20_TARGET})")
    record_property("claim_depth_20_gas", first.gas_used)
    assert first.paid == amount and repeat.paid == 0
    assert first.gas_used <= CLAIM_DEPTH_20_TARGET
