"""Proofs from independent implementations verify in the real MerkleProof.sol on a real node."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from settlement.merkle import SETTLEMENT_LEAF_ENCODING, settlement_value
from tests.chain.helpers import Leaf, address, claim, finalize, settlement_tree

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


def rows_for(count):
    consumers = [address() for _ in range(3)]
    return [(consumers[i % 3], address(), 1_000 + 37 * i) for i in range(count)]


def test_openzeppelin_js_proofs_verify_on_chain(registry):
    d = registry.deployment
    rows = rows_for(11)
    values = [settlement_value(d.chain_id, d.registry, 1, *row) for row in rows]
    js = openzeppelin_tree(values)
    registry.commit_batch(1, bytes.fromhex(js["root"][2:]), 0, len(values), b"\x01" * 32)
    for consumer in {c for c, _, _ in rows}:
        registry.deposit_for(consumer, 100_000, mint=True)
    finalize(registry, 1)

    for (consumer, payee, amount), proof in zip(rows, js["proofs"]):
        item = Leaf(consumer, payee, amount, [bytes.fromhex(p[2:]) for p in proof])
        assert claim(registry, 1, item).paid == amount
        assert registry.token_balance(payee) == amount


def test_python_tree_claims_on_chain(registry):
    d = registry.deployment
    rows = rows_for(9)
    tree = settlement_tree(d.chain_id, d.registry, 1, rows)
    assert "0x" + tree.root.hex() == openzeppelin_tree(tree.values)["root"]
    registry.commit_batch(1, tree.root, 0, len(rows), b"\x01" * 32)
    for consumer in {c for c, _, _ in rows}:
        registry.deposit_for(consumer, 100_000, mint=True)
    finalize(registry, 1)

    for index, (consumer, payee, amount) in enumerate(rows):
        assert claim(registry, 1, Leaf(consumer, payee, amount, tree.get_proof(index))).paid == amount
