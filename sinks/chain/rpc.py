"""Talking to a node: connect with retries, sign and send, wait for receipts and confirmations.

Transient transport errors (connection refused or reset, HTTP 429/5xx, timeouts) are retried
with exponential backoff by web3's HTTPProvider. Resending a signed raw transaction is safe: it
has one hash, and a node that already has it answers "already known". Everything that still
fails becomes a ChainError naming the transaction hash and the decoded custom error.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3RPCError
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from settlement.errors import ChainError, UsageError
from sinks.chain.artifacts import decode_revert

log = logging.getLogger("meterroot.chain")

TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.HTTPError, ConnectionError)
RETRY = ExceptionRetryConfiguration(errors=TRANSIENT_ERRORS, retries=6, backoff_factor=0.25)
"""Up to 6 attempts, sleeping 0.25, 0.5, 1, 2, 4 s between them (about 8 s in all)."""

GAS_MARGIN_PERCENT = 20
"""Added to the node's gas estimate: state can change between estimate and inclusion."""


def connect(rpc_url: str, *, expected_chain_id: int | None = None, request_timeout: float = 30) -> Web3:
    """A Web3 on `rpc_url`, checked to answer (and to be `expected_chain_id` when given)."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": request_timeout},
                                exception_retry_configuration=RETRY))
    try:
        chain_id = w3.eth.chain_id
    except TRANSIENT_ERRORS as exc:
        raise ChainError(
            f"no Ethereum node answers at {rpc_url} ({type(exc).__name__}); start one with "
            f"`meterroot chain up --output OUT` or pass the right --rpc-url") from exc
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise UsageError(
            f"the node at {rpc_url} is chain {chain_id} but the deployment is on chain "
            f"{expected_chain_id}; pass the --rpc-url of chain {expected_chain_id}")
    return w3


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: str
    """0x-prefixed transaction hash."""
    block: int
    """Block it was mined in."""
    gas_used: int
    """Gas it used."""
    receipt: dict
    """The full receipt (logs, contractAddress, ...)."""


class Sender:
    """Signs with one local key and sends transactions to one node, one at a time."""

    def __init__(self, w3: Web3, account: LocalAccount, *, confirmations: int = 1,
                 timeout: float = 120, poll_interval: float = 0.1):
        if confirmations < 1:
            raise UsageError(f"--confirmations must be at least 1, not {confirmations}")
        self.w3 = w3
        self.account = account
        self.confirmations = confirmations
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.chain_id = w3.eth.chain_id

    @property
    def address(self) -> str:
        return self.account.address

    def send(self, call, label: str, *, gas: int | None = None) -> TxResult:
        """Send a contract call or constructor; return once mined and confirmed.

        `gas` skips the estimate (which would refuse a reverting call before it is sent).
        """
        params = {
            "from": self.account.address,
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending"),
        }
        try:
            params["gas"] = gas if gas is not None else self._estimate(call, params)
            tx = call.build_transaction(params)
        except ContractLogicError as exc:
            raise ChainError(f"{label} would revert: {decode_revert(exc.data)}; not sent") from exc
        except Web3RPCError as exc:  # e.g. the sender cannot pay for the gas
            raise ChainError(f"{label}: the node refused to prepare it: {exc.message}; not sent") from exc
        signed = self.account.sign_transaction(tx)
        tx_hash = "0x" + bytes(signed.hash).hex()
        self._send_raw(signed.raw_transaction, tx_hash, label)
        log.info("%s: sent %s", label, tx_hash)
        receipt = self.wait_for_receipt(tx_hash, label)
        if receipt["status"] != 1:
            reason = self._replay_revert(tx, receipt)
            raise ChainError(f"{label} reverted in tx {tx_hash} (block {receipt['blockNumber']}): {reason}")
        receipt = self.wait_for_confirmations(tx_hash, receipt, label)
        return TxResult(tx_hash=tx_hash, block=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                        receipt=receipt)

    def _estimate(self, call, params: dict) -> int:
        estimate = call.estimate_gas({k: v for k, v in params.items() if k != "nonce"})
        return estimate + estimate * GAS_MARGIN_PERCENT // 100  # rounded down; a few gas either way

    def _send_raw(self, raw: bytes, tx_hash: str, label: str) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError as exc:
            if "already known" in str(exc).lower():  # a retried send that the node had received
                return
            raise ChainError(f"{label}: the node refused tx {tx_hash}: {exc.message}") from exc
        except TRANSIENT_ERRORS as exc:
            raise ChainError(
                f"{label}: could not send tx {tx_hash} ({type(exc).__name__} after retries); "
                f"it may still reach the chain: look it up before sending again") from exc

    def wait_for_receipt(self, tx_hash: str, label: str) -> dict:
        try:
            return dict(self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.timeout, poll_latency=self.poll_interval))
        except TimeExhausted as exc:
            raise ChainError(
                f"{label}: tx {tx_hash} was sent but not mined within {self.timeout:g} s; it may "
                f"still be mined: look it up before sending again") from exc

    def wait_for_confirmations(self, tx_hash: str, receipt: dict, label: str) -> dict:
        """Wait until `confirmations` blocks (its own included) carry the tx; follows reorgs."""
        deadline = time.monotonic() + self.timeout
        while True:
            depth = self.w3.eth.block_number - receipt["blockNumber"] + 1
            if depth >= self.confirmations:
                current = self._receipt_or_none(tx_hash)
                if current is not None and current["blockHash"] == receipt["blockHash"]:
                    return receipt
                if current is not None:  # reorganised into another block: count again from there
                    receipt = current
                    continue
            if time.monotonic() > deadline:
                raise ChainError(
                    f"{label}: tx {tx_hash} mined in block {receipt['blockNumber']} has {max(depth, 0)} "
                    f"of {self.confirmations} confirmations after {self.timeout:g} s")
            time.sleep(self.poll_interval)

    def _receipt_or_none(self, tx_hash: str) -> dict | None:
        try:
            return dict(self.w3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            return None

    def _replay_revert(self, tx: dict, receipt: dict) -> str:
        """Why a mined tx reverted: replay it as a call on the state of its block."""
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        try:
            self.w3.eth.call(call, block_identifier=receipt["blockNumber"])
        except ContractLogicError as exc:
            return decode_revert(exc.data)
        return "reverted (the replay on its block succeeds; state changed within the block)"
