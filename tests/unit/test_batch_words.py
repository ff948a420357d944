"""The three ABI words every leaf of a batch shares, laid out without eth_abi, are eth_abi's
bytes; what eth_abi refuses is refused with eth_abi's own error."""
import random

import pytest
from eth_abi import encode

from settlement.addresses import to_checksum_address
from settlement.merkle import _batch_words

TYPES = ["uint256", "address", "uint64"]


@pytest.mark.parametrize("seed", range(8))
def test_batch_words_are_eth_abis(seed):
    rng = random.Random(seed)
    address = f"0x{rng.getrandbits(160):040x}"
    for registry in (address, address.upper().replace("0X", "0x"), to_checksum_address(address)):
        for chain_id, batch in ((rng.getrandbits(256), rng.getrandbits(64)), (1, 0), (2**256 - 1, 2**64 - 1)):
            assert _batch_words(chain_id, registry, batch) == encode(TYPES, [chain_id, registry, batch])
    mixed = "0x5FbDB2315678afecb367f032d93F642f64180aA3"  # not EIP-55: eth_abi encodes it all the same
    assert _batch_words(1, mixed, 2) == encode(TYPES, [1, mixed, 2])


@pytest.mark.parametrize("args", [(2**256, "0x" + "11" * 20, 1), (1, "0x" + "11" * 20, 2**64), (-1, "0x" + "11" * 20, 1),
                                  (1, "0x123", 1),
                                  (1, "0x" + "zz" * 20, 1)])
def test_what_eth_abi_refuses_is_refused_alike(args):
    with pytest.raises(Exception) as ours:
        _batch_words(*args)
    with pytest.raises(Exception) as theirs:
        encode(TYPES, list(args))
    assert type(ours.value) is type(theirs.value)
