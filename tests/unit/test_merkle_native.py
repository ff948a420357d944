"""The Rust batch keccak (native/keccak) gives the bytes of the one-at-a-time Python path."""
import hashlib
import json
import random

import pytest

from settlement import keccak
from settlement.merkle import (SETTLEMENT_LEAF_ENCODING, Nodes, StandardMerkleTree, hash_leaf,
                               settlement_leaf_hash_block, settlement_value)

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture
def pure(monkeypatch):
    """settlement.keccak as it runs without the extension."""
    monkeypatch.setattr(keccak, "_native", None)


def _data(n: int, seed: int = 1) -> bytes:
    return b"".join(hashlib.sha512(f"{seed}:{i}".encode()).digest() for i in range(n))


def test_the_extension_is_installed():
    assert keccak.native(), "meterroot_keccak is missing: run `make install` (it builds native/keccak)"


@pytest.mark.parametrize("width", [1, 32, 64, 136, 137, 192])
def test_batch_hashes_equal_one_at_a_time(width):
    data = _data(130)[: width * 40]
    expected = b"".join(keccak.keccak256(data[i:i + width]) for i in range(0, len(data), width))
    assert keccak.keccak256_many(data, width) == expected
    leaves = keccak.standard_leaf_hashes(data, width)
    assert leaves == b"".join(keccak.keccak256(keccak.keccak256(data[i:i + width]))
                              for i in range(0, len(data), width))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1001])
def test_tree_nodes_and_order_equal_the_python_reference(n, monkeypatch):
    rng = random.Random(n)
    hashes = bytes(rng.getrandbits(8) for _ in range(32 * n))
    if n > 3:  # equal hashes keep their input order (a stable sort, as the JS library's)
        hashes = hashes[:64] + hashes[:32] + hashes[96:]
    native_nodes, native_order = keccak.merkle_nodes(hashes), keccak.sorted_order(hashes)
    monkeypatch.setattr(keccak, "_native", None)
    assert native_nodes == keccak.merkle_nodes(hashes)
    assert native_order.tolist() == keccak.sorted_order(hashes).tolist()


def test_bad_record_widths_are_refused():
    with pytest.raises(ValueError, match="whole number"):
        keccak.keccak256_many(b"abc", 2)
    with pytest.raises(ValueError, match="at least one leaf"):
        keccak.merkle_nodes(b"")


def test_leaf_block_equals_the_generic_encoder_at_the_word_limits():
    consumers = [f"0x{i:040x}" for i in range(4)] + ["0x" + "f" * 40]
    payees = [REGISTRY.lower(), REGISTRY, REGISTRY.upper().replace("0X", "0x"), "0x" + "0" * 40, REGISTRY]
    amounts = [0, 1, 2**128, 2**256 - 1, 10**38 - 1]
    block = settlement_leaf_hash_block(2**256 - 1, REGISTRY, 2**64 - 1, consumers, payees, amounts)
    assert block == b"".join(hash_leaf(SETTLEMENT_LEAF_ENCODING, [2**256 - 1, REGISTRY, 2**64 - 1, c, p, a])
                             for c, p, a in zip(consumers, payees, amounts))
    with pytest.raises(OverflowError):
        settlement_leaf_hash_block(1, REGISTRY, 1, consumers[:1], payees[:1], [2**256])
    with pytest.raises(ValueError, match="consumer"):
        settlement_leaf_hash_block(1, REGISTRY, 1, ["0x1234"], payees[:1], [1])


def _values(n):
    return [settlement_value(31337, REGISTRY, 2, f"0x{i:040x}", f"0x{(i * 31) % 11 + 1:040x}", 10**18 * i)
            for i in range(1, n + 1)]


@pytest.mark.parametrize("n", [1, 2, 5, 300])
def test_native_and_pure_trees_are_the_same_tree(n, pure):
    pure_tree = StandardMerkleTree.of(_values(n), SETTLEMENT_LEAF_ENCODING)
    pure_dump = pure_tree.dump()
    keccak._native = __import__("meterroot_keccak")
    native_tree = StandardMerkleTree.of(_values(n), SETTLEMENT_LEAF_ENCODING)
    assert native_tree.root == pure_tree.root and native_tree.dump() == pure_dump


@pytest.mark.parametrize("values", [
    _values(40),
    [["1", "a\"quote"], ["2", "back\\slash"]],           # needs escaping: the generic encoder
    [["1", "caf\u00e9"], ["2", "tab\there"]],
    [[1, "x"], [2, "y"]],                               # not all strings
])
def test_dump_json_is_the_generic_json_dump(values):
    encoding = SETTLEMENT_LEAF_ENCODING if len(values[0]) == 6 else ("uint256", "string")
    tree = StandardMerkleTree.of(values, encoding)
    assert tree.dump_json() == json.dumps(tree.dump(), separators=(",", ":"), ensure_ascii=True).encode()


def test_nodes_read_as_a_list_of_32_byte_nodes():
    data = _data(3)[:96]
    nodes = Nodes(data)
    as_list = [data[:32], data[32:64], data[64:]]
    assert len(nodes) == 3 and list(nodes) == as_list and nodes[-1] == as_list[-1]
    assert nodes[1:] == as_list[1:] and nodes == as_list
    with pytest.raises(IndexError):
        nodes[3]
