"""A deployed SettlementRegistry: its views, and the transactions meterroot sends to it."""
from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.logs import DISCARD  # the token's Transfer log sits in the same receipt

from settlement.errors import ChainError, UsageError
from sinks.chain.artifacts import REGISTRY, TEST_TOKEN
from sinks.chain.deployment import Deployment, checksum, contract
from sinks.chain.keys import DEV_CHAIN_IDS
from sinks.chain.rpc import Sender, TxResult

COMMITTER_ROLE = Web3.keccak(text="COMMITTER_ROLE")
GOVERNANCE_ROLE = Web3.keccak(text="GOVERNANCE_ROLE")


@dataclass(frozen=True)
class OnChainBatch:
    """What the registry stores about one batch."""

    number: int
    """Batch number."""
    root: bytes
    """Committed Merkle root (32 zero bytes when never committed)."""
    total: int
    """Σ amount_wei of the batch, as committed."""
    leaf_count: int
    """Leaves in the batch's tree, as committed."""
    manifest_hash: bytes
    """keccak256 of the batch's manifest.json bytes, as committed."""
    committed_at: int
    """Block timestamp of the commit; 0 when never committed."""
    revoked: bool
    """Revoked by governance during its challenge period."""
    claimable_at: int
    """committed_at + challenge period; 0 when never committed."""

    @property
    def committed(self) -> bool:
        return self.committed_at != 0

    @property
    def live(self) -> bool:
        return self.committed_at != 0 and not self.revoked


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of one claim transaction."""

    batch: int
    """Batch whose leaf was proven."""
    consumer: str
    """Whose deposit paid."""
    payee: str
    """Who was paid."""
    paid: int
    """Tokens transferred to the payee by this claim (0: nothing was left to collect)."""
    shortfall: int
    """What the consumer still owes the payee through this batch because the deposit ran out."""
    collected: int
    """What the payee has collected from the consumer in total after this claim."""
    tx_hash: str
    """The claim transaction."""
    gas_used: int
    """Gas the claim used."""


class Registry:
    """Reads from and sends to one deployed registry; `sender` is needed only to send."""

    def __init__(self, w3: Web3, deployment: Deployment, sender: Sender | None = None):
        self.w3 = w3
        self.deployment = deployment
        self.sender = sender
        self.contract = contract(w3, REGISTRY, deployment.registry)
        self.token = contract(w3, TEST_TOKEN, deployment.token)  # only ERC-20 functions are used unless minting

    def require_code(self) -> "Registry":
        """Fail clearly when the deployment's registry has no code on this node."""
        if not self.w3.eth.get_code(self.deployment.registry):
            raise ChainError(
                f"no contract at registry {self.deployment.registry} on chain {self.deployment.chain_id} "
                f"(a local chain restarted without its state?); deploy again with `meterroot chain deploy`")
        return self

    # -------------------------------------------------------------------------------- views
    def batch(self, number: int) -> OnChainBatch:
        root, total, leaf_count, manifest_hash, committed_at, revoked = \
            self.contract.functions.batchInfo(number).call()
        claimable_at = committed_at + self.deployment.challenge_period if committed_at else 0
        return OnChainBatch(number, bytes(root), total, leaf_count, bytes(manifest_hash),
                            committed_at, revoked, claimable_at)

    def latest_batch(self) -> int:
        return self.contract.functions.latestBatch().call()

    def deposit_of(self, consumer: str) -> int:
        return self.contract.functions.deposits(checksum(consumer, "consumer")).call()

    def collected(self, consumer: str, payee: str) -> int:
        return self.contract.functions.collected(checksum(consumer, "consumer"), checksum(payee, "payee")).call()

    def pending_withdrawal(self, consumer: str) -> tuple[int, int]:
        """(amount, unlock time) of the consumer's withdrawal request; (0, 0) when none."""
        amount, unlock_at = self.contract.functions.withdrawals(checksum(consumer, "consumer")).call()
        return amount, unlock_at

    def token_balance(self, owner: str) -> int:
        return self.token.functions.balanceOf(checksum(owner, "address")).call()

    def block_timestamp(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    # --------------------------------------------------------------------------- transactions
    def _sender(self) -> Sender:
        if self.sender is None:
            raise UsageError("this registry handle is read-only; give it a Sender to send transactions")
        return self.sender

    def commit_batch(self, number: int, root: bytes, total: int, leaf_count: int,
                     manifest_hash: bytes) -> TxResult:
        return self._sender().send(
            self.contract.functions.commitBatch(number, root, total, leaf_count, manifest_hash),
            f"commitBatch({number})")

    def revoke_batch(self, number: int) -> TxResult:
        return self._sender().send(self.contract.functions.revokeBatch(number), f"revokeBatch({number})")

    def claim(self, number: int, consumer: str, payee: str, cumulative: int, proof: list[bytes],
              *, gas: int | None = None) -> ClaimResult:
        consumer, payee = checksum(consumer, "consumer"), checksum(payee, "payee")
        result = self._sender().send(
            self.contract.functions.claim(number, consumer, payee, cumulative, proof),
            f"claim(batch {number}, {consumer} -> {payee})", gas=gas)
        claimed = self.contract.events.Claimed().process_receipt(result.receipt, errors=DISCARD)
        shortfalls = self.contract.events.Shortfall().process_receipt(result.receipt, errors=DISCARD)
        paid = claimed[0]["args"]["amount"] if claimed else 0
        return ClaimResult(
            batch=number, consumer=consumer, payee=payee, paid=paid,
            shortfall=shortfalls[0]["args"]["unpaid"] if shortfalls else 0,
            collected=self.collected(consumer, payee), tx_hash=result.tx_hash, gas_used=result.gas_used)

    def mint(self, to: str, amount: int) -> TxResult:
        """Mint test tokens; only a deployment made with --test-token has a mintable token."""
        if not self.deployment.test_token:
            raise UsageError(f"--mint needs a deployment with --test-token; token {self.deployment.token} "
                             f"is a real ERC-20: acquire and approve it instead")
        return self._sender().send(self.token.functions.mint(checksum(to, "address"), amount), f"mint({amount})")

    def deposit_for(self, consumer: str, amount: int, *, mint: bool = False) -> TxResult:
        """Deposit `amount` of the sender's tokens for `consumer` (approving the registry first).

        `mint` first mints the amount to the sender (test token only).
        """
        if amount <= 0:
            raise UsageError(f"the deposit amount must be a positive number of wei, not {amount}")
        consumer = checksum(consumer, "consumer")
        sender = self._sender()
        if mint:
            self.mint(sender.address, amount)
        allowance = self.token.functions.allowance(sender.address, self.deployment.registry).call()
        if allowance < amount:
            sender.send(self.token.functions.approve(self.deployment.registry, amount), f"approve({amount})")
        return sender.send(self.contract.functions.depositFor(consumer, amount),
                           f"depositFor({consumer}, {amount})")

    def request_withdrawal(self, amount: int) -> TxResult:
        return self._sender().send(self.contract.functions.requestWithdrawal(amount),
                                   f"requestWithdrawal({amount})")

    def withdraw(self) -> TxResult:
        return self._sender().send(self.contract.functions.withdraw(), "withdraw()")


def advance_time(w3: Web3, seconds: int) -> int:
    """Move a development chain's clock forward and mine a block; returns the new timestamp."""
    chain_id = w3.eth.chain_id
    if chain_id not in DEV_CHAIN_IDS:
        raise UsageError(f"only a development chain ({sorted(DEV_CHAIN_IDS)}) can skip time, not chain {chain_id}")
    w3.provider.make_request("evm_increaseTime", [int(seconds)])
    w3.provider.make_request("evm_mine", [])
    return w3.eth.get_block("latest")["timestamp"]
