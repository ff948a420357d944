"""keccak256 over a C backend (safe-pysha3, the C backend eth-hash uses): under 1 us a hash."""
from eth_hash.backends import pysha3 as _backend
from eth_hash.main import Keccak256
from sha3 import keccak_256 as _keccak_256

keccak256 = Keccak256(_backend)
"""keccak256(bytes) -> 32-byte digest."""


def keccak256_raw(data: bytes) -> bytes:
    """keccak256 without eth-hash's argument checks, for the Merkle tree's hot loops."""
    return _keccak_256(data).digest()
