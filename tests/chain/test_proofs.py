"""Proofs from independent implementations verify in the real MerkleProof.sol on a real node."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from settlement.merkle import SETTLEMENT_LEAF_ENCODING, settlement_value
from eth_account import Account

from tests.chain.helpers import Leaf, address, finalize, permit, settlement_tree, stake_providers

REPO = Path(__file__).resolve().parents[2]

# @openzeppelin/merkle-tree from node_modules: the reference implementation of the leaves.
OPENZEPPELIN_TREE = r"""
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const [values, types] = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const tree = StandardMerkleTree.of(values, types);
const proofs = values.map((_, i) => tree.getProof(i));
process.stdout.write(JSON.stringify({ root: tree.root, proofs }));
"""


def openzeppelin_tree(values):
    done = subprocess.run(["node", "-e", OPENZEPPELIN_TREE], cwd=REPO, check=True, capture_output=True,
                          text=True, input=json.dumps([values, list(SETTLEMENT_LEAF_ENCODING)]))
    return json.loads(done.stdout)


def rows_for(registry, count):
    """`count` leaves of three consumers that deposit; each payee is staked. Returns the rows and
    each row's permit, signed by its consumer (claimed with claimWithPermit)."""
    consumers = [Account.create() for _ in range(3)]
    rows = [(consumers[i % 3].address, address(), 1_000 + 37 * i) for i in range(count)]
    permits = [permit(registry, consumers[i % 3], payee, amount) for i, (_, payee, amount) in enumerate(rows)]
    stake_providers(registry, [payee for _, payee, _ in rows])
    for consumer in consumers:
        registry.deposit_for(consumer.address, 100_000, mint=True)
    return rows, permits


def claim_with(registry, item, spend_permit):
    return registry.claim_with_permit(1, item.consumer, item.payee, item.cumulative, item.proof, spend_permit)


def test_openzeppelin_js_proofs_verify_on_chain(registry):
    d = registry.deployment
    rows, permits = rows_for(registry, 11)
    values = [settlement_value(d.chain_id, d.registry, 1, *row) for row in rows]
    js = openzeppelin_tree(values)
    registry.commit_batch(1, bytes.fromhex(js["root"][2:]), sum(a for _, _, a in rows), len(values), b"\x01" * 32)
    finalize(registry, 1)

    for (consumer, payee, amount), proof, spend_permit in zip(rows, js["proofs"], permits):
        item = Leaf(consumer, payee, amount, [bytes.fromhex(p[2:]) for p in proof])
        assert claim_with(registry, item, spend_permit).paid == amount
        assert registry.token_balance(payee) == amount


def test_python_tree_claims_on_chain(registry):
    d = registry.deployment
    rows, permits = rows_for(registry, 9)
    tree = settlement_tree(d.chain_id, d.registry, 1, rows)
    assert "0x" + tree.root.hex() == openzeppelin_tree(tree.values)["root"]
    registry.commit_batch(1, tree.root, sum(a for _, _, a in rows), len(rows), b"\x01" * 32)
    finalize(registry, 1)

    for (consumer, payee, amount), spend_permit in zip(rows, permits):
        index = tree.find(lambda v: v[3] == consumer and v[4] == payee)
        assert claim_with(registry, Leaf(consumer, payee, amount, tree.get_proof(index)), spend_permit).paid == amount
