"""Gas of commitBatch and of claim at proof depth 20 with a stored permit (Counter NFT update
included), on the real node; targets 100k and 150k (SPEC §6).

Gas is deterministic for given calldata and storage, so the targets are asserted. Run with -s to
see the figures.

A depth-20 proof in an OpenZeppelin tree needs at least 2^19 + 1 leaves; MerkleProof only
hashes the leaf up its path, so a path of 20 random siblings (an unbalanced tree with the leaf at
depth 20) costs exactly what a proof of that depth in a full tree costs.
"""
from __future__ import annotations

from eth_account import Account

from settlement.keccak import keccak256
from settlement.merkle import SETTLEMENT_LEAF_ENCODING, hash_leaf, process_proof, settlement_value
from tests.chain.helpers import Leaf, address, claim, consent, finalize, stake_provider

COMMIT_TARGET = 100_000
CLAIM_DEPTH_20_TARGET = 150_000
DATA_URI = "http://127.0.0.1:65535/meterroot/batches/18446744073709551615/tree.json"
"""A data URI of 72 bytes, longer than `meterroot serve` publishes: calldata and log bytes cost gas."""


def dense(label: str) -> bytes:
    """32 bytes with no zero byte: the dearest calldata (16 gas a byte instead of 4)."""
    return bytes(b | 1 for b in keccak256(label.encode()))


def test_commit_batch_gas(registry, record_property):
    # Dearest arguments: no zero byte in root or manifest hash, large totals and leaf count.
    total = 2**126 - 1  # three of them still fit the 2^128 - 1 ceiling on the sum of totals
    gas = [registry.commit_batch(n, dense(f"root {n}"), total, 2**32 - 1, dense(f"manifest {n}"), DATA_URI).gas_used
           for n in (1, 2, 3)]
    registry.revoke_batch(2, "gas of a recommit")
    gas.append(registry.commit_batch(2, dense("root 2 again"), total, 2**32 - 1, dense("manifest 2"), DATA_URI).gas_used)
    print(f"\ncommitBatch gas: batch 1 {gas[0]}, batch 2 {gas[1]}, batch 3 {gas[2]}, batch 2 recommitted "
          f"{gas[3]} (target {COMMIT_TARGET})")
    record_property("commit_batch_gas", gas)
    assert max(gas) <= COMMIT_TARGET


def test_claim_gas_at_proof_depth_20_with_a_stored_permit(registry, record_property):
    d = registry.deployment
    consumer, payee, amount = Account.create(), address(), 987_654_321_000_000_000
    value = settlement_value(d.chain_id, d.registry, 1, consumer.address, payee, amount)
    proof = [dense(f"sibling {i}") for i in range(20)]
    root = process_proof(hash_leaf(SETTLEMENT_LEAF_ENCODING, value), proof)
    registry.commit_batch(1, root, amount, 2**20, dense("manifest"), DATA_URI)
    registry.deposit_for(consumer.address, 2 * amount, mint=True)  # mints the consumer's Counter NFT
    stake_provider(registry, payee)
    consent(registry, consumer, payee, 2 * amount)
    finalize(registry, 1)

    # The dearest claim: the payee holds no tokens yet and is paid for the first time, the
    # registry's first payout, and the Counter NFT's first update.
    first = claim(registry, 1, Leaf(consumer.address, payee, amount, proof))
    repeat = claim(registry, 1, Leaf(consumer.address, payee, amount, proof))
    print(f"\nclaim gas at depth 20 with a stored permit: first {first.gas_used}, repeated (pays nothing) "
          f"{repeat.gas_used} (target {CLAIM_DEPTH_20_TARGET})")
    record_property("claim_depth_20_gas", first.gas_used)
    assert first.paid == amount and repeat.paid == 0
    assert registry.counters(consumer.address).wei_paid == amount
    assert first.gas_used <= CLAIM_DEPTH_20_TARGET
