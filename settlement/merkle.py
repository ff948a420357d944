"""OpenZeppelin's StandardMerkleTree (@openzeppelin/merkle-tree, `standard-v1`), byte for byte.

- leaf = keccak256(keccak256(abi.encode(leafEncoding, value)))
- leaves sorted ascending by hash, laid out at the end of a flat array of 2n - 1 nodes in
  reverse order; node i has children 2i + 1 and 2i + 2; an internal node is the keccak256 of
  its two children sorted (commutative), so `MerkleProof.verify` needs no left/right flags.

Equality with the JS library is proven in tests/unit/test_merkle_vs_openzeppelin.py.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii
from typing import Iterable, Sequence

import numpy as np

from settlement.addresses import AddressError, normalize_address, to_checksum_address
from settlement.errors import InvalidTree
from settlement.keccak import extension, keccak256, merkle_nodes, standard_leaf_hashes, standard_tree

FORMAT = "standard-v1"

DUMP_CHUNK = 8 << 20
"""Bytes of a dump_chunks piece: large enough that a write call costs little per byte."""

SETTLEMENT_LEAF_ENCODING = ("uint256", "address", "uint64", "address", "address", "uint256")
"""values = [chainId, registry, batch, consumer, payee, cumulativeAmount] (SPEC §5)."""


def _abi_value(abi_type: str, item):
    """Dumps hold integers as decimal strings (JSON has no uint256); the encoder wants ints."""
    if isinstance(item, str) and abi_type.startswith(("uint", "int")):
        return int(item, 0)
    return item


def abi_encode(types: list[str], values: list) -> bytes:
    """eth_abi's `encode`, imported when first used (with eth_utils, ~0.5 s of a batch's start)."""
    from eth_abi import encode
    return encode(types, values)


def _batch_words(chain_id: int, registry: str, batch: int) -> bytes:
    """ABI encoding of (uint256 chain_id, address registry, uint64 batch): three left-padded
    32-byte words; anything eth_abi would refuse or word otherwise goes to eth_abi."""
    if type(chain_id) is int and type(batch) is int and 0 <= chain_id < 2**256 and 0 <= batch < 2**64:
        try:
            address = bytes.fromhex(normalize_address(registry)[2:])
        except AddressError:  # eth_abi's own error, and mixed case it may still take
            pass
        else:
            return chain_id.to_bytes(32, "big") + address.rjust(32, b"\0") + batch.to_bytes(32, "big")
    return abi_encode(["uint256", "address", "uint64"], [chain_id, registry, batch])


def hash_leaf(leaf_encoding: Sequence[str], value: Sequence) -> bytes:
    """OpenZeppelin `standardLeafHash`: double keccak of the ABI encoding."""
    items = [_abi_value(t, v) for t, v in zip(leaf_encoding, value)]
    return keccak256(keccak256(abi_encode(list(leaf_encoding), items)))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin `standardNodeHash` / `MerkleProof._hashPair`: keccak of the sorted pair."""
    return keccak256(a + b if a < b else b + a)


def _address_bytes(addresses: Sequence[str], what: str) -> np.ndarray:
    """(n, 20) uint8 of 0x-prefixed 40-hex addresses (any case)."""
    if any(len(a) != 42 for a in addresses):
        bad = next(a for a in addresses if len(a) != 42)
        raise ValueError(f"{what} {bad!r} is not a 0x-prefixed 20-byte address")
    raw = bytes.fromhex("".join(a[2:] for a in addresses))
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(addresses), 20)


def settlement_leaf_hash_block(chain_id: int, registry: str, batch: int, consumers: Sequence[str],
                               payees: Sequence[str], amounts: Sequence[int]) -> bytes:
    """Leaf hashes of the (consumer, payee, cumulative) leaves of one batch, 32 bytes each,
    concatenated in the order given.

    The same bytes as `hash_leaf(SETTLEMENT_LEAF_ENCODING, ...)`: every word of these static
    types is a left-padded 32-byte big-endian value, so the three words the batch shares are
    laid out once (as eth_abi does: _batch_words) and the rest is laid out per leaf: by the Rust extension straight from the lists
    (no Python per leaf), or without it by numpy, all encodings at once. Errors: ValueError
    naming a bad address, OverflowError for an amount outside uint256."""
    n = len(consumers)
    if not n:
        return b""
    prefix = _batch_words(chain_id, registry, batch)
    native = extension()
    if native is not None:
        return native.settlement_leaf_hashes(prefix, _as_list(consumers), _as_list(payees), _as_list(amounts))
    encoded = np.zeros((n, 192), dtype=np.uint8)
    encoded[:, :96] = np.frombuffer(prefix, dtype=np.uint8)
    encoded[:, 108:128] = _address_bytes(consumers, "consumer")
    encoded[:, 140:160] = _address_bytes(payees, "payee")
    try:  # amounts below 2**63 (nearly all): numpy converts them in one C loop
        small = np.fromiter(amounts, dtype=np.int64, count=n)
        if (small < 0).any():
            raise OverflowError
        encoded[:, 184:] = small.astype(">u8").view(np.uint8).reshape(n, 8)
    except (OverflowError, TypeError):
        words = b"".join(int(a).to_bytes(32, "big") for a in amounts)  # OverflowError outside uint256
        encoded[:, 160:] = np.frombuffer(words, dtype=np.uint8).reshape(n, 32)
    return standard_leaf_hashes(encoded.tobytes(), 192)


def _as_list(items) -> list:
    return items if isinstance(items, list) else list(items)


def settlement_leaf_hashes(
    chain_id: int, registry: str, batch: int, rows: Iterable[tuple[str, str, int]]
) -> list[bytes]:
    """Leaf hashes of (consumer, payee, cumulative) rows of one batch (settlement_leaf_hash_block
    as a list of 32-byte hashes)."""
    rows = list(rows)
    if not rows:
        return []
    consumers, payees, amounts = zip(*rows)
    block = settlement_leaf_hash_block(chain_id, registry, batch, consumers, payees, amounts)
    return [block[i:i + 32] for i in range(0, len(block), 32)]


class SettlementValues(Sequence):
    """The leaf values of one batch, `[chainId, registry, batch, consumer, payee, cumulative]`
    with integers as decimal strings, read from the batch's columns: value i is made when it is
    read (a million small lists cost more to make than the tree's hashes), and the dump reads
    the columns directly (StandardMerkleTree.dump_chunks)."""

    __slots__ = ("chain_id", "registry", "batch", "consumers", "payees", "amounts")

    def __init__(self, chain_id: int, registry: str, batch: int, consumers: Sequence[str],
                 payees: Sequence[str], amounts: Sequence[int]):
        if not len(consumers) == len(payees) == len(amounts):
            raise ValueError(f"{len(consumers)} consumers, {len(payees)} payees and {len(amounts)} "
                             "amounts: a leaf needs one of each")
        self.chain_id, self.registry, self.batch = str(chain_id), registry, str(batch)
        self.consumers, self.payees, self.amounts = _as_list(consumers), _as_list(payees), _as_list(amounts)

    def __len__(self) -> int:
        return len(self.consumers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return [self.chain_id, self.registry, self.batch, self.consumers[index], self.payees[index],
                str(self.amounts[index])]

    def __eq__(self, other):
        if not isinstance(other, (SettlementValues, list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(mine == list(theirs) for mine, theirs in zip(self, other))

    def __reduce__(self):
        return (SettlementValues, (self.chain_id, self.registry, self.batch, self.consumers, self.payees,
                                   self.amounts))


def settlement_values(chain_id: int, registry: str, batch: int, consumers: Sequence[str],
                      payees: Sequence[str], amounts: Sequence[int]) -> SettlementValues:
    """The leaf values of one batch as they stand in the dump, `[chainId, registry, batch,
    consumer, payee, cumulative]` with integers as decimal strings; addresses as given (the
    batch's are EIP-55 already, see settlement_value)."""
    return SettlementValues(chain_id, registry, batch, consumers, payees, amounts)


class Nodes(Sequence):
    """The flat node array of a tree (32 bytes a node, one bytes object), read as a list of
    32-byte nodes: 2n - 1 small objects would cost more to make than the hashes."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        if len(data) % 32:
            raise InvalidTree(f"a node array of {len(data)} bytes is not a whole number of 32-byte nodes")
        self.data = data

    def __len__(self) -> int:
        return len(self.data) // 32

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("tree node index out of range")
        return self.data[32 * index:32 * index + 32]

    def __eq__(self, other):
        if isinstance(other, Nodes):
            return self.data == other.data
        return isinstance(other, (list, tuple)) and list(self) == list(other)


def _flat(hashes) -> bytes:
    return hashes if isinstance(hashes, (bytes, bytearray)) else b"".join(hashes)


_NO_LEAVES = "a Merkle tree needs at least one leaf; a batch with nothing owed has no tree"


def build_tree(sorted_leaves) -> Nodes:
    """OpenZeppelin `makeMerkleTree` over leaves already in their final order (a list of
    32-byte leaves, or their concatenation)."""
    if not sorted_leaves:
        raise InvalidTree(_NO_LEAVES)
    return Nodes(merkle_nodes(bytes(_flat(sorted_leaves))))


def process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """OpenZeppelin `MerkleProof.processProof`."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


class StandardMerkleTree:
    """A standard-v1 tree: `of` to build, `dump`/`load` to persist, `get_proof` to claim."""

    def __init__(self, tree: list[bytes], values: list[list], tree_indices: list[int],
                 leaf_encoding: Sequence[str]):
        self.tree = tree
        self.values = values
        self.tree_indices = tree_indices
        self.leaf_encoding = tuple(leaf_encoding)

    @classmethod
    def of(cls, values: Sequence[Sequence], leaf_encoding: Sequence[str],
           leaf_hashes: list[bytes] | None = None) -> "StandardMerkleTree":
        """Build from values (in the order they will be dumped); leaves are sorted by hash.

        `leaf_hashes`, when given, are the already computed hashes of `values` (fast path).
        """
        if leaf_hashes is None:
            leaf_hashes = [hash_leaf(leaf_encoding, v) for v in values]
        flat = bytes(_flat(leaf_hashes))
        if len(flat) != 32 * len(values):
            raise InvalidTree(f"{len(flat)} bytes of leaf hashes for {len(values)} values (32 bytes each)")
        if not flat:
            raise InvalidTree(_NO_LEAVES)
        nodes, tree_indices = standard_tree(flat)
        values = values if isinstance(values, SettlementValues) else _as_list(values)
        return cls(Nodes(nodes), values, tree_indices.tolist(), leaf_encoding)

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def leaf_hash(self, value_index: int) -> bytes:
        return self.tree[self.tree_indices[value_index]]

    def get_proof(self, value_index: int) -> list[bytes]:
        """Siblings from the leaf up to (not including) the root."""
        index = self.tree_indices[value_index]
        proof = []
        while index > 0:
            sibling = index - 1 if index % 2 == 0 else index + 1
            proof.append(self.tree[sibling])
            index = (index - 1) // 2
        return proof

    def find(self, predicate) -> int:
        """Index of the first value for which `predicate(value)` holds."""
        for i, value in enumerate(self.values):
            if predicate(value):
                return i
        raise KeyError("no value in the tree matches")

    def verify(self, value_index: int) -> bool:
        leaf = hash_leaf(self.leaf_encoding, self.values[value_index])
        return process_proof(leaf, self.get_proof(value_index)) == self.root

    def validate(self) -> None:
        """Recompute every leaf and node; raise InvalidTree on the first mismatch."""
        for i, value in enumerate(self.values):
            if hash_leaf(self.leaf_encoding, value) != self.leaf_hash(i):
                raise InvalidTree(f"value {i} {value} does not hash to its leaf in the tree")
        n_leaves = len(self.values)
        for i in range(len(self.tree) - n_leaves - 1, -1, -1):
            if hash_pair(self.tree[2 * i + 1], self.tree[2 * i + 2]) != self.tree[i]:
                raise InvalidTree(f"tree node {i} is not the hash of its children")

    def dump(self) -> dict:
        """The `standard-v1` dump that `StandardMerkleTree.load` of the JS library reads."""
        return {
            "format": FORMAT,
            "leafEncoding": list(self.leaf_encoding),
            "tree": ["0x" + node.hex() for node in self.tree],
            "values": [
                {"value": value, "treeIndex": index}
                for value, index in zip(self.values, self.tree_indices)
            ],
        }

    def dump_json(self) -> bytes:
        """`json.dumps(self.dump(), separators=(",", ":"), ensure_ascii=True)` as bytes. Settlement
        dumps are millions of short strings, which the generic encoder takes seconds over: the
        Rust extension writes trees of 32-byte nodes with values of strings in one pass."""
        native = extension()
        nodes = self._node_bytes()
        if native is not None and nodes is not None:
            if isinstance(self.values, SettlementValues):
                return b"".join(self.dump_chunks())
            dump = native.standard_dump_json(self._dump_head(), nodes, _as_list(self.values),
                                             _as_list(self.tree_indices))
            if dump is not None:
                return dump
        return json.dumps(self.dump(), separators=(",", ":"), ensure_ascii=True).encode()

    def dump_chunks(self, chunk: int = DUMP_CHUNK) -> Iterator[bytes]:
        """dump_json() in pieces of about `chunk` bytes, so a writer can put one in its file while
        the next is made; a settlement tree's values are read from their columns as they go."""
        native = extension()
        nodes = self._node_bytes()
        if native is None or nodes is None or not isinstance(self.values, SettlementValues):
            yield self.dump_json()
            return
        v = self.values
        shared = json.dumps([v.chain_id, v.registry, v.batch], separators=(",", ":"), ensure_ascii=True)
        yield from native.SettlementDump(
            self._dump_head(), nodes, ('{"value":[' + shared[1:-1] + ",").encode(), v.consumers, v.payees,
            v.amounts, _as_list(self.tree_indices), encode_basestring_ascii, chunk)

    def _dump_head(self) -> bytes:
        """The dump's text up to its tree: `{"format":…,"leafEncoding":[…]`."""
        return json.dumps({"format": FORMAT, "leafEncoding": list(self.leaf_encoding)},
                          separators=(",", ":"), ensure_ascii=True)[:-1].encode()

    def _node_bytes(self) -> bytes | None:
        """The nodes as one byte string, or None when one is not 32 bytes (a loaded dump's)."""
        if isinstance(self.tree, Nodes):
            return self.tree.data
        if all(len(node) == 32 for node in self.tree):
            return b"".join(self.tree)
        return None

    @classmethod
    def load(cls, data: dict) -> "StandardMerkleTree":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidTree(
                f"unknown tree format {data.get('format') if isinstance(data, dict) else data!r}; "
                f"expected a {FORMAT!r} dump written by meterroot or @openzeppelin/merkle-tree")
        try:
            tree = [bytes.fromhex(node[2:]) for node in data["tree"]]
            values = [entry["value"] for entry in data["values"]]
            indices = [int(entry["treeIndex"]) for entry in data["values"]]
            encoding = data["leafEncoding"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidTree(f"the tree dump is incomplete or ill-formed: {exc}") from exc
        return cls(tree, values, indices, encoding)


def settlement_value(chain_id: int, registry: str, batch: int, consumer: str, payee: str,
                     cumulative: int) -> list:
    """A leaf value as it stands in the dump: integers as decimal strings, EIP-55 addresses."""
    return [str(chain_id), to_checksum_address(registry), str(batch),
            to_checksum_address(consumer), to_checksum_address(payee), str(cumulative)]

