"""Our StandardMerkleTree equals OpenZeppelin's JS implementation byte for byte."""
import json

import pytest

from settlement.merkle import (SETTLEMENT_LEAF_ENCODING, StandardMerkleTree, hash_leaf,
                               process_proof, settlement_leaf_hashes, settlement_value)
from tests.support.openzeppelin import run_openzeppelin

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def values(n):
    return [settlement_value(31337, REGISTRY, 3, f"0x{i:040x}", f"0x{(i * 7919) % 97 + 1:040x}",
                             i * 10**18 + i) for i in range(1, n + 1)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 17, 64, 1500])
def test_root_proofs_and_dump_equal_openzeppelin(n):
    vals = values(n)
    ours = StandardMerkleTree.of(vals, SETTLEMENT_LEAF_ENCODING)
    theirs = run_openzeppelin({"values": vals, "encoding": list(SETTLEMENT_LEAF_ENCODING)})
    assert "0x" + ours.root.hex() == theirs["root"]
    assert [["0x" + p.hex() for p in ours.get_proof(i)] for i in range(n)] == theirs["proofs"]
    assert ours.dump() == theirs["dump"]
    assert json.loads(ours.dump_json()) == theirs["dump"]


def test_our_dump_loads_validates_and_verifies_in_openzeppelin():
    tree = StandardMerkleTree.of(values(9), SETTLEMENT_LEAF_ENCODING)
    result = run_openzeppelin({"dump": tree.dump()})
    assert result["loaded_root"] == "0x" + tree.root.hex()
    assert result["verified"] == [True] * 9


def test_fast_leaf_hashes_equal_the_generic_encoder():
    rows = [(f"0x{i:040x}", REGISTRY, 2**256 - 1 - i) for i in range(5)]
    fast = settlement_leaf_hashes(1, REGISTRY, 2**64 - 1, rows)
    slow = [hash_leaf(SETTLEMENT_LEAF_ENCODING, [1, REGISTRY, 2**64 - 1, c, p, a]) for c, p, a in rows]
    assert fast == slow


def test_every_proof_leads_to_the_root_and_a_changed_amount_does_not():
    tree = StandardMerkleTree.of(values(6), SETTLEMENT_LEAF_ENCODING)
    for i, value in enumerate(tree.values):
        leaf = hash_leaf(SETTLEMENT_LEAF_ENCODING, value)
        assert process_proof(leaf, tree.get_proof(i)) == tree.root
        inflated = value[:5] + [str(int(value[5]) + 1)]
        assert process_proof(hash_leaf(SETTLEMENT_LEAF_ENCODING, inflated), tree.get_proof(i)) != tree.root


def test_load_round_trips_and_validate_catches_a_tampered_value():
    tree = StandardMerkleTree.of(values(4), SETTLEMENT_LEAF_ENCODING)
    loaded = StandardMerkleTree.load(tree.dump())
    loaded.validate()
    assert loaded.root == tree.root
    dump = tree.dump()
    dump["values"][0]["value"][5] = "1"
    with pytest.raises(Exception, match="does not hash"):
        StandardMerkleTree.load(dump).validate()
