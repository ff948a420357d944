"""A settlement tree's dump made in chunks from its columns, and written chunk by chunk, is the
generic JSON dump byte for byte."""
import json
import pickle
import random

import pytest

from settlement import keccak
from settlement.merkle import (SETTLEMENT_LEAF_ENCODING, SettlementValues, StandardMerkleTree,
                               settlement_leaf_hash_block, settlement_values)
from sinks import atomic

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _generic(tree: StandardMerkleTree) -> bytes:
    return json.dumps(tree.dump(), separators=(",", ":"), ensure_ascii=True).encode()


def _batch(seed: int, n: int):
    rng = random.Random(seed)
    consumers = [f"0x{rng.randbytes(20).hex()}" for _ in range(n)]
    payees = [rng.choice([REGISTRY, REGISTRY.lower()]) for _ in range(n)]
    amounts = [rng.choice([0, 1, 2**63 - 1, 2**63, 2**64, 2**256 - 1, rng.getrandbits(200)]) for _ in range(n)]
    return consumers, payees, amounts


@pytest.mark.parametrize("chunk", [1, 70, 1000, 1 << 20])
def test_chunks_join_to_the_generic_dump(chunk):
    consumers, payees, amounts = _batch(chunk, 257)
    values = settlement_values(31337, REGISTRY, 7, consumers, payees, amounts)
    hashes = settlement_leaf_hash_block(31337, REGISTRY, 7, consumers, payees, amounts)
    tree = StandardMerkleTree.of(values, SETTLEMENT_LEAF_ENCODING, leaf_hashes=hashes)
    assert keccak.native()
    chunks = list(tree.dump_chunks(chunk))
    assert b"".join(chunks) == tree.dump_json() == _generic(tree)
    if chunk < 1000:
        assert len(chunks) > 10 and all(len(c) < chunk + 2048 for c in chunks)


def test_values_are_made_when_read_and_equal_the_lists():
    consumers, payees, amounts = _batch(3, 5)
    values = settlement_values(1, REGISTRY, 2, consumers, payees, amounts)
    lists = [["1", REGISTRY, "2", c, p, str(a)] for c, p, a in zip(consumers, payees, amounts)]
    assert values == lists and list(values) == lists and values[1:3] == lists[1:3] and values[-1] == lists[-1]
    assert pickle.loads(pickle.dumps(values)) == lists


def test_strings_outside_plain_ascii_and_odd_amounts_are_spelled_as_json_dumps_does():
    registry = 'reg"istry\\caf\u00e9\U0001f600'
    values = SettlementValues(2**256 - 1, registry, 0, ["a\nb", "plain", "\x7f"], ["\u0800", "x", "y"],
                              [True, 2**255, -5])
    tree = StandardMerkleTree.of(values, ("string",) * 6, leaf_hashes=[bytes([i]) * 32 for i in range(3)])
    assert b"".join(tree.dump_chunks(16)) == _generic(tree)


def test_a_value_that_is_not_a_string_is_refused_as_json_dumps_refuses_it():
    values = SettlementValues(1, REGISTRY, 1, [b"0x00"], [REGISTRY], [1])
    tree = StandardMerkleTree.of(values, ("string",) * 6, leaf_hashes=[b"\x01" * 32])
    with pytest.raises(TypeError):
        _generic(tree)
    with pytest.raises(TypeError):
        tree.dump_json()


def test_a_pickled_tree_dumps_the_same_bytes():
    consumers, payees, amounts = _batch(5, 40)
    tree = StandardMerkleTree.of(settlement_values(5, REGISTRY, 1, consumers, payees, amounts),
                                 SETTLEMENT_LEAF_ENCODING)
    assert pickle.loads(pickle.dumps(tree)).dump_json() == tree.dump_json()


def test_written_chunks_are_the_file_and_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "tree.json"
    atomic.write_chunks(target, iter([b"ab", b"", b"c" * 100_000, b"\n"]))
    assert target.read_bytes() == b"ab" + b"c" * 100_000 + b"\n"

    def broken():
        yield b"partial"
        raise RuntimeError("the dump failed half way")

    with pytest.raises(RuntimeError):
        atomic.write_chunks(tmp_path / "other.json", broken())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree.json"]
    with pytest.raises(RuntimeError):
        atomic.write_chunks(target, broken())
    assert target.read_bytes() == b"ab" + b"c" * 100_000 + b"\n"


def test_a_large_batch_read_and_hashed_in_overlapped_runs_equals_its_pieces():
    rng = random.Random(11)
    consumers, payees, amounts = _batch(11, 150_001)
    consumers = sorted(rng.choice(consumers[:40_000]) for _ in consumers)  # runs of one consumer
    whole = settlement_leaf_hash_block(31337, REGISTRY, 3, consumers, payees, amounts)
    pieces = b"".join(settlement_leaf_hash_block(31337, REGISTRY, 3, consumers[i:i + 10_000],
                                                 payees[i:i + 10_000], amounts[i:i + 10_000])
                      for i in range(0, len(consumers), 10_000))
    assert whole == pieces
    payees[140_000] = "0x1234"
    with pytest.raises(ValueError, match="payee '0x1234' is not a 0x-prefixed 20-byte address"):
        settlement_leaf_hash_block(31337, REGISTRY, 3, consumers, payees, amounts)
