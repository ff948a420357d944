"""What a gateway (or the consumer SDK) reads on chain about one consumer: its available
deposit, its pending withdrawal, its Counter NFT, and the WithdrawalRequested events that make
a cached answer stale.

Written against the registry's ABI as deployed: a v2 registry answers `available(consumer)`
(deposit minus pending withdrawal) and names its Counter NFT; a v1 registry has neither, and
`available` is computed as deposits − pending withdrawal, with no token id.
"""
from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from sinks.chain.artifacts import REGISTRY, load_artifact
from sinks.chain.deployment import checksum

COUNTER_NFT = "CounterNFT"


@dataclass(frozen=True)
class ConsumerStanding:
    """One consumer's money on the registry, as of one block."""

    consumer: str
    """EIP-55 address."""
    deposit: int
    """Tokens deposited and not withdrawn or paid out."""
    available: int
    """Deposit minus the pending withdrawal."""
    pending_withdrawal: int
    """Amount of a withdrawal request not yet withdrawn (0: none)."""
    unlock_at: int
    """When the pending withdrawal may be withdrawn (0: none)."""
    token_id: int | None
    """The consumer's Counter NFT id (None: no NFT yet, or a registry without one)."""
    block: int
    """Block the answer was read at."""


def _abi_names(abi: list) -> set[str]:
    return {entry.get("name") for entry in abi if entry.get("type") == "function"}


class StandingReader:
    """Reads consumers' standing from one registry (synchronous web3; callers pick the thread)."""

    def __init__(self, w3: Web3, registry: str):
        self.w3 = w3
        self.registry = checksum(registry, "registry")
        abi = load_artifact(REGISTRY).abi
        self.contract = w3.eth.contract(address=self.registry, abi=abi)
        self._functions = _abi_names(abi)
        self._counter = None

    def standing(self, consumer: str) -> ConsumerStanding:
        consumer = checksum(consumer, "consumer")
        block = self.w3.eth.block_number
        functions = self.contract.functions
        deposit = functions.deposits(consumer).call(block_identifier=block)
        pending, unlock_at = functions.withdrawals(consumer).call(block_identifier=block)[:2]
        if "available" in self._functions:
            available = functions.available(consumer).call(block_identifier=block)
        else:
            available = max(deposit - pending, 0)
        return ConsumerStanding(consumer, deposit, available, pending, unlock_at,
                                self.token_id(consumer, block), block)

    def token_id(self, consumer: str, block="latest") -> int | None:
        """The consumer's Counter NFT id, None when it has none (or the registry mints none)."""
        counter = self.counter_contract()
        if counter is None:
            return None
        token = counter.functions.tokenOf(checksum(consumer, "consumer")).call(block_identifier=block)
        return token or None

    def counter_contract(self):
        if self._counter is None and "counterNFT" in self._functions:
            address = self.contract.functions.counterNFT().call()
            if int(address, 16):
                self._counter = self.w3.eth.contract(address=address, abi=load_artifact(COUNTER_NFT).abi)
        return self._counter

    def withdrawal_requests(self, from_block: int) -> tuple[list[str], int]:
        """(consumers that requested a withdrawal in blocks from_block.., the last block read)."""
        head = self.w3.eth.block_number
        if head < from_block:
            return [], from_block - 1
        logs = self.contract.events.WithdrawalRequested().get_logs(from_block=from_block, to_block=head)
        return [log["args"]["consumer"] for log in logs], head
