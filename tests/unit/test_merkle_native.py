"""The Rust extension (native/keccak) gives the bytes of the one-at-a-time Python path."""
import hashlib
import json
import random

import pytest

from settlement import keccak
from eth_utils import to_checksum_address

from settlement.merkle import (SETTLEMENT_LEAF_ENCODING, Nodes, StandardMerkleTree, hash_leaf,
                               settlement_leaf_hash_block, settlement_value, settlement_values)

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


# Property: the native path (settlement leaves, tree, dump) equals the reference on random batches.

_WORD_EDGES = [0, 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**128 - 1, 2**128, 2**256 - 1]


def _random_address(rng: random.Random) -> str:
    raw = rng.randbytes(20).hex()
    spelling = rng.randrange(3)
    if spelling == 0:
        return "0x" + raw
    if spelling == 1:
        return "0x" + raw.upper()
    return to_checksum_address("0x" + raw)


def _random_amount(rng: random.Random) -> int:
    if rng.random() < 0.3:
        return rng.choice(_WORD_EDGES)
    return rng.getrandbits(rng.randrange(1, 257))


def _random_batch(seed: int):
    rng = random.Random(seed)
    n = rng.randrange(1, 600)
    payees = [_random_address(rng) for _ in range(rng.randrange(1, 8))]
    consumers = [_random_address(rng) for _ in range(n)]
    rows = [(rng.choice(consumers), rng.choice(payees), _random_amount(rng)) for _ in range(n)]
    if n > 2:  # a repeated leaf: equal hashes keep their value order, as the JS library's sort
        rows[-1] = rows[0]
    chain_id, batch = rng.choice([1, 31337, 2**256 - 1]), rng.choice([0, 1, 2**64 - 1, rng.getrandbits(64)])
    return chain_id, _random_address(rng), batch, rows


@pytest.mark.parametrize("seed", range(8))
def test_native_leaves_tree_and_dump_equal_the_reference_on_random_batches(seed, monkeypatch):
    chain_id, registry, batch, rows = _random_batch(seed)
    consumers, payees, amounts = (list(column) for column in zip(*rows))
    native_hashes = settlement_leaf_hash_block(chain_id, registry, batch, consumers, payees, amounts)
    values = settlement_values(chain_id, registry, batch, consumers, payees, amounts)
    native_tree = StandardMerkleTree.of(values, SETTLEMENT_LEAF_ENCODING, leaf_hashes=native_hashes)
    native_dump = native_tree.dump_json()

    reference = b"".join(hash_leaf(SETTLEMENT_LEAF_ENCODING, [chain_id, registry, batch, c, p, a])
                         for c, p, a in rows)
    assert native_hashes == reference
    monkeypatch.setattr(keccak, "_native", None)
    assert settlement_leaf_hash_block(chain_id, registry, batch, consumers, payees, amounts) == reference
    pure_tree = StandardMerkleTree.of(values, SETTLEMENT_LEAF_ENCODING)
    assert native_tree.root == pure_tree.root and list(native_tree.tree) == list(pure_tree.tree)
    assert native_tree.tree_indices == pure_tree.tree_indices
    assert native_dump == pure_tree.dump_json() == json.dumps(
        pure_tree.dump(), separators=(",", ":"), ensure_ascii=True).encode()
    assert [native_tree.get_proof(i) for i in range(len(rows))] == [pure_tree.get_proof(i) for i in range(len(rows))]


def _random_text(rng: random.Random) -> str:
    alphabet = ['"', "\\", "/", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", " ", "~", "a",
                "\u00e9", "\u0800", "\uffff", "\U0001f600", "\U0010ffff"]
    return "".join(rng.choice(alphabet) if rng.random() < 0.5 else chr(rng.randrange(0x20, 0x7f))
                   for _ in range(rng.randrange(0, 12)))


@pytest.mark.parametrize("seed", range(4))
def test_native_dump_escapes_strings_as_json_dumps_does(seed):
    rng = random.Random(seed)
    width = rng.randrange(0, 4)
    values = [[_random_text(rng) for _ in range(width)] for _ in range(rng.randrange(1, 40))]
    if rng.random() < 0.5:
        values = [tuple(value) for value in values]
    tree = StandardMerkleTree.of(values, ("string",) * width,
                                 leaf_hashes=[rng.randbytes(32) for _ in values])
    assert keccak.native()
    assert tree.dump_json() == json.dumps(tree.dump(), separators=(",", ":"), ensure_ascii=True).encode()


def test_a_loaded_dump_writes_back_the_same_bytes():
    tree = StandardMerkleTree.of(_values(37), SETTLEMENT_LEAF_ENCODING)
    text = tree.dump_json()
    assert StandardMerkleTree.load(json.loads(text)).dump_json() == text


@pytest.mark.parametrize("amount, error", [(-1, OverflowError), (2**256, OverflowError), (True, TypeError),
                                           ("5", TypeError), (1.0, TypeError)])
def test_native_leaves_refuse_amounts_outside_uint256(amount, error):
    with pytest.raises(error):
        settlement_leaf_hash_block(1, REGISTRY, 1, [REGISTRY], [REGISTRY], [amount])


@pytest.mark.parametrize("address", ["0x" + "g" * 40, "1x" + "0" * 40, "0x" + "0" * 39, b"0x" + b"0" * 40, None])
def test_native_leaves_name_a_bad_address(address):
    with pytest.raises(ValueError, match="payee .* is not a 0x-prefixed 20-byte address"):
        settlement_leaf_hash_block(1, REGISTRY, 1, [REGISTRY], [address], [1])
