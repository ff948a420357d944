"""A consumer's own transactions and views on one registry (what the consumer SDK calls).

The consumer's key signs its deposits and withdrawal requests; everything else is a view.
The token is the registry's own `token()`, so the registry address alone is enough.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3 import Web3

from settlement.errors import ChainError, UsageError
from sinks.chain.artifacts import TEST_TOKEN, load_artifact
from sinks.chain.deployment import checksum
from sinks.chain.keys import DEV_CHAIN_IDS
from sinks.chain.rpc import Sender, TxResult
from sinks.chain.standing import ConsumerStanding, StandingReader


@dataclass(frozen=True)
class Counter:
    """A consumer's Counter NFT: its counters, and its on-chain tokenURI decoded."""

    token_id: int
    """The NFT's id (what usage events name in `token_id`)."""
    wei_paid: int
    """Wei the consumer's deposit has paid out in claims."""
    claims: int
    """Claims that paid something."""
    last_batch: int
    """Highest batch a claim paid through."""
    metadata: dict
    """tokenURI decoded: name, description and the counters as attributes."""

    def attribute(self, trait: str):
        """The value of one attribute (e.g. "wei paid"); None when the metadata has none."""
        for item in self.metadata.get("attributes", []):
            if item.get("trait_type") == trait:
                return item.get("value")
        return None


def decode_token_uri(uri: str) -> dict:
    """JSON metadata of a `data:application/json;base64,…` (or plain `data:application/json,…`) URI."""
    head, sep, body = uri.partition(",")
    if not sep or not head.startswith("data:application/json"):
        raise ChainError(f"tokenURI {uri[:60]!r} is not a data:application/json URI")
    text = base64.b64decode(body).decode() if head.endswith(";base64") else body
    return json.loads(text)


class ConsumerWallet:
    def __init__(self, w3: Web3, registry: str, account: LocalAccount):
        self.w3 = w3
        self.account = account
        self.reader = StandingReader(w3, registry)
        self.registry = self.reader.registry
        self.contract = self.reader.contract
        if not w3.eth.get_code(self.registry):
            raise UsageError(f"registry {self.registry} has no contract on chain {w3.eth.chain_id}; check the "
                             f"registry address and the rpc_url")
        self.token = w3.eth.contract(address=self.contract.functions.token().call(),
                                     abi=load_artifact(TEST_TOKEN).abi)
        self._sender: Sender | None = None

    @property
    def sender(self) -> Sender:
        if self._sender is None:
            self._sender = Sender(self.w3, self.account)
        return self._sender

    @property
    def address(self) -> str:
        return self.account.address

    # -------------------------------------------------------------------------------- views
    def standing(self) -> ConsumerStanding:
        return self.reader.standing(self.address)

    def token_balance(self) -> int:
        return self.token.functions.balanceOf(self.address).call()

    def collected(self, payee: str) -> int:
        return self.contract.functions.collected(self.address, checksum(payee, "payee")).call()

    def permitted(self, payee: str) -> int:
        """The permit amount the registry holds for (this consumer, `payee`)."""
        return self.contract.functions.permitted(self.address, checksum(payee, "payee")).call()

    def counter(self) -> Counter | None:
        """The consumer's Counter NFT; None before its first deposit."""
        token_id, wei_paid, claims, last_batch = self.reader.counters(self.address)
        if not token_id:
            return None
        uri = self.reader.counter_contract().functions.tokenURI(token_id).call()
        return Counter(token_id, wei_paid, claims, last_batch, decode_token_uri(uri))

    # --------------------------------------------------------------------------- transactions
    def deposit(self, amount: int, *, mint: bool = False) -> TxResult:
        """Deposit `amount` of the consumer's tokens (approving the registry first); `mint` first
        mints them (a development chain's test token only)."""
        if amount <= 0:
            raise UsageError(f"the deposit must be a positive number of wei, not {amount}")
        sender = self.sender
        if mint:
            if sender.chain_id not in DEV_CHAIN_IDS:
                raise UsageError("mint=True is for a development chain's test token only")
            sender.send(self.token.functions.mint(self.address, amount), f"mint({amount})")
        allowance = self.token.functions.allowance(self.address, self.registry).call()
        if allowance < amount:
            sender.send(self.token.functions.approve(self.registry, amount), f"approve({amount})")
        return sender.send(self.contract.functions.deposit(amount), f"deposit({amount})")

    def request_withdrawal(self, amount: int) -> TxResult:
        return self.sender.send(self.contract.functions.requestWithdrawal(amount), f"requestWithdrawal({amount})")

    def withdraw(self) -> TxResult:
        return self.sender.send(self.contract.functions.withdraw(), "withdraw()")

    def submit_permit(self, payee: str, cumulative_amount: int, signature: bytes) -> TxResult:
        return self.sender.send(
            self.contract.functions.submitPermit(self.address, checksum(payee, "payee"), cumulative_amount,
                                                 signature),
            f"submitPermit({payee}, {cumulative_amount})")

