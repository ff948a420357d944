"""keccak256 over a C backend (safe-pysha3 through eth-hash): under 1 us a hash."""
from eth_hash.backends import pysha3 as _backend
from eth_hash.main import Keccak256

keccak256 = Keccak256(_backend)
"""keccak256(bytes) -> 32-byte digest."""
