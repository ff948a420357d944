"""What a gateway (or the consumer SDK) reads on chain about one consumer: its available
deposit, its pending withdrawal, its Counter NFT, and the WithdrawalRequested events that make
a cached answer stale.

A v2 registry (SPEC §6) answers `available(consumer)`: the deposit less what a pending, not
lapsed, withdrawal request will take; its Counter NFT (`counterNFT()`) answers
`countersOf(consumer)`, whose token id is 0 before the first deposit.
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
    """What a pending, not lapsed, withdrawal request will take (0: none)."""
    unlock_at: int
    """When the pending withdrawal may be withdrawn (0: none)."""
    token_id: int | None
    """The consumer's Counter NFT id (None: no NFT yet, or a registry without one)."""
    block: int
    """Block the answer was read at."""


class StandingReader:
    """Reads consumers' standing from one registry (synchronous web3; callers pick the thread)."""

    def __init__(self, w3: Web3, registry: str):
        self.w3 = w3
        self.registry = checksum(registry, "registry")
        abi = load_artifact(REGISTRY).abi
        self.contract = w3.eth.contract(address=self.registry, abi=abi)
        self._counter = None

    def standing(self, consumer: str) -> ConsumerStanding:
        consumer = checksum(consumer, "consumer")
        block = self.w3.eth.block_number
        functions = self.contract.functions
        deposit = functions.deposits(consumer).call(block_identifier=block)
        _, unlock_at = functions.withdrawals(consumer).call(block_identifier=block)[:2]
        available = functions.available(consumer).call(block_identifier=block)
        pending = deposit - available  # 0 once a request has lapsed
        return ConsumerStanding(consumer, deposit, available, pending, unlock_at if pending else 0,
                                self.token_id(consumer, block), block)

    def counters(self, consumer: str, block="latest") -> tuple[int, int, int, int]:
        """(token id, wei paid, claims, last batch) of the consumer's Counter NFT; id 0: none yet."""
        return tuple(self.counter_contract().functions.countersOf(checksum(consumer, "consumer"))
                     .call(block_identifier=block))

    def token_id(self, consumer: str, block="latest") -> int | None:
        """The consumer's Counter NFT id; None before its first deposit."""
        return self.counters(consumer, block)[0] or None

    def counter_contract(self):
        if self._counter is None:
            address = self.contract.functions.counterNFT().call()
            self._counter = self.w3.eth.contract(address=address, abi=load_artifact(COUNTER_NFT).abi)
        return self._counter

    def withdrawal_requests(self, from_block: int) -> tuple[list[str], int]:
        """(consumers that requested a withdrawal in blocks from_block.., the last block read)."""
        head = self.w3.eth.block_number
        if head < from_block:
            return [], from_block - 1
        logs = self.contract.events.WithdrawalRequested().get_logs(from_block=from_block, to_block=head)
        return [log["args"]["consumer"] for log in logs], head
