"""The consumer -> Counter NFT id mapping as the chain has it, for `meterroot batch --token-ids`
(settlement.token_ids checks events' `token_id` against it).

Counter NFT ids run from 1 to `totalMinted()` and are never transferred (ERC-5192, locked), so
`ownerOf(id)` of every id is the whole mapping. Everything is read at one block, so the mapping
is the chain's at that block even while consumers make first deposits.
"""
from __future__ import annotations

from dataclasses import dataclass

from settlement.errors import UsageError
from sinks.chain.deployment import checksum
from sinks.chain.registry import Registry


@dataclass(frozen=True)
class CounterTokens:
    """Every consumer's Counter NFT id at one block."""

    known: dict[str, int]
    """EIP-55 consumer -> its token id."""
    counter_nft: str
    """The Counter NFT contract read."""
    block: int
    """The block every call was made at."""


def read_counter_tokens(registry: Registry, block: int | None = None) -> CounterTokens:
    """Read every minted token's owner from the registry's Counter NFT at `block` (default: the
    latest block)."""
    nft = registry.counter_nft
    if nft is None:
        raise UsageError(f"the deployment of registry {registry.deployment.registry} names no Counter NFT "
                         "(a registry before v2?); its consumers have no token ids to check against")
    at = registry.w3.eth.block_number if block is None else block
    minted = nft.functions.totalMinted().call(block_identifier=at)
    known = {}
    for token_id in range(1, minted + 1):
        owner = checksum(nft.functions.ownerOf(token_id).call(block_identifier=at), "owner")
        known[owner] = token_id
    return CounterTokens(known=known, counter_nft=nft.address, block=at)
