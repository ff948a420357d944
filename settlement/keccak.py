"""keccak256 over C and Rust backends.

One hash: safe-pysha3 (the C backend eth-hash uses), under 1 us a call. Many hashes: the
meterroot_keccak extension (native/keccak, Rust over tiny-keccak, built by `make install`)
hashes fixed-width records of one byte string per call, without the GIL and on every core.
Without the extension (a tree built before `make install` ran) the same functions loop over
safe-pysha3: same bytes, several times slower."""
from __future__ import annotations

import numpy as np
from eth_hash.backends import pysha3 as _backend
from eth_hash.main import Keccak256
from sha3 import keccak_256 as _keccak_256

try:
    import meterroot_keccak as _native
except ImportError:  # pragma: no cover - exercised by tests that hide the extension
    _native = None

keccak256 = Keccak256(_backend)
"""keccak256(bytes) -> 32-byte digest."""


def keccak256_raw(data: bytes) -> bytes:
    """keccak256 without eth-hash's argument checks, for the Merkle tree's hot loops."""
    return _keccak_256(data).digest()


def native() -> bool:
    """Whether the batch functions below run in the Rust extension."""
    return _native is not None


def extension():
    """The meterroot_keccak module, or None when it is not installed (callers that use one of
    its whole-batch functions directly keep a Python path for that case)."""
    return _native


def _records(data: bytes, width: int) -> list[bytes]:
    if width <= 0 or len(data) % width:
        raise ValueError(f"{len(data)} bytes are not a whole number of {width}-byte records")
    return [data[i:i + width] for i in range(0, len(data), width)]


def keccak256_many(data: bytes, width: int) -> bytes:
    """keccak256 of each `width`-byte record of `data`, concatenated (32 bytes each)."""
    if _native is not None:
        return _native.keccak256_many(data, width)
    return b"".join(keccak256_raw(r) for r in _records(data, width))


def standard_leaf_hashes(data: bytes, width: int) -> bytes:
    """OpenZeppelin `standardLeafHash` (keccak256 twice) of each `width`-byte ABI encoding."""
    if _native is not None:
        return _native.standard_leaf_hashes(data, width)
    h = keccak256_raw
    return b"".join(h(h(r)) for r in _records(data, width))


def merkle_nodes(sorted_leaves: bytes) -> bytes:
    """OpenZeppelin `makeMerkleTree` over n 32-byte leaves in their final order: the flat
    array of 2n - 1 nodes (leaves at the end, reversed; node i = hash of sorted children)."""
    if _native is not None:
        return _native.merkle_tree(sorted_leaves)
    leaves = _records(sorted_leaves, 32)
    n = len(leaves)
    if not n:
        raise ValueError("a Merkle tree needs at least one leaf")
    tree = [b""] * (n - 1) + leaves[::-1]
    h = keccak256_raw
    for i in range(n - 2, -1, -1):
        a, b = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = h(a + b if a < b else b + a)
    return b"".join(tree)


def sorted_order(hashes: bytes) -> np.ndarray:
    """Indices (int64) of the 32-byte records of `hashes` in ascending byte order, stable (as
    the JS library's sort with `compare`)."""
    if _native is not None:
        return np.frombuffer(_native.sorted_order(hashes), dtype="<u8").astype(np.int64)
    records = _records(hashes, 32)
    return np.array(sorted(range(len(records)), key=records.__getitem__), dtype=np.int64)


def standard_tree(hashes: bytes) -> tuple[bytes, np.ndarray]:
    """OpenZeppelin `StandardMerkleTree.of` from the 32-byte leaf hashes of its values, in value
    order: (the flat node array, each value's tree index as int64)."""
    if _native is not None:
        nodes, indices = _native.standard_tree(hashes)
        return nodes, np.frombuffer(indices, dtype="<i8").astype(np.int64)
    order = sorted_order(hashes)
    n = len(order)
    if not n:
        raise ValueError("a Merkle tree needs at least one leaf")
    leaves = np.frombuffer(hashes, dtype=np.uint8).reshape(n, 32)[order].tobytes()
    indices = np.empty(n, dtype=np.int64)
    indices[order] = 2 * n - 2 - np.arange(n)
    return merkle_nodes(leaves), indices
