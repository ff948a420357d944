"""Talking to a node: connect, sign and send, see a transaction through to its confirmations.

Every JSON-RPC request goes through `PatientHTTPProvider`: a refused connection, a reset, a
timeout, HTTP 429 or 5xx is retried with exponential backoff for up to `rpc_timeout` seconds,
then becomes `NodeUnavailable`. A node URL often carries an API key, so it is shown only as
scheme://host[:port] (`redact_url`), in messages and in web3's own log lines.

`Sender.send` is the one way a transaction leaves meterroot. With its `Journal` it is
idempotent per intent (journal.py): the signed transaction is journaled before it is
broadcast, a rerun finds an unfinished one by hash and nonce instead of sending another, a
confirmed one is answered from its receipt. While it waits, a transaction that vanished from
the node is rebroadcast, one stuck longer than `replace_after` is replaced at the same nonce
with bumped EIP-1559 fees within the operator's caps (fees.py), and a receipt counts only when
it is still canonical after `confirmations` blocks: a reorganised-away transaction is waited
for (and rebroadcast) again, and one that reverts after a reorg is reported, never as success.
Every failure is a ChainError naming the transaction and how to resume.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from settlement.errors import ChainError, UsageError
from settlement.keccak import keccak256
from sinks.chain.artifacts import decode_revert
from sinks.chain.fees import FeeCaps, Fees, bumped_fees, initial_fees
from sinks.chain.journal import CONFIRMED, MINED, REBROADCAST, REVERTED, SENT, SUPERSEDED, Attempt, \
    IntentRecord, Journal

log = logging.getLogger("meterroot.chain")

TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.HTTPError, ConnectionError)
RETRY = ExceptionRetryConfiguration(errors=TRANSIENT_ERRORS, retries=6, backoff_factor=0.25)
"""How long `connect` tries a node before saying none answers: sleeps of 0.25, 0.5, 1, 2, 4 s."""
DEFAULT_RPC_TIMEOUT = 120.0
"""Seconds an outage of the node is waited out (--rpc-timeout) once connected."""
MAX_BACKOFF = 4.0
"""Longest sleep between two tries of a request during an outage."""
DEFAULT_REPLACE_AFTER = 120.0
"""Seconds a sent transaction may stay unmined before it is replaced with bumped fees."""

SUPERSEDED_AFTER = 30.0
"""Seconds our nonce must be seen used, with no receipt of ours, before the intent is superseded."""
REBROADCAST_EVERY = 1.0
"""Seconds between two rebroadcasts of a transaction the node does not have."""
ACCEPTED, NONCE_USED, FEE_TOO_LOW, REFUSED = "accepted", "nonce used", "fee too low", "refused"
_FEE_REFUSALS = ("underpriced", "base fee", "fee cap", "feecap", "max fee", "gas price", "priority fee")
"""Words of a node's refusal that a higher fee answers (geth, anvil, erigon, nethermind wordings)."""

GAS_MARGIN_PERCENT = 20
"""Added to the node's gas estimate: state can change between estimate and inclusion."""


# ------------------------------------------------------------------------------ the node
def redact_url(url: str | None) -> str:
    """scheme://host[:port] of a node URL: no user, password, path, query or fragment (API keys)."""
    try:
        parts = urlsplit(str(url))
        host, port = parts.hostname, parts.port
    except ValueError:
        return "<the RPC URL>"
    if not parts.scheme or not host:
        return "<the RPC URL>"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def is_public_url(url: str | None) -> bool:
    """True when the URL holds nothing that redaction would remove (safe to store as is)."""
    return url is not None and redact_url(url) == str(url).rstrip("/")


class NodeUnavailable(ChainError):
    """The node did not answer for `rpc_timeout` seconds."""


class _SecretFilter(logging.Filter):
    """Rewrites log records that carry a node URL or its secret parts (web3 logs the endpoint
    URI, urllib3 the request path at DEBUG) with the redacted URL."""

    LOGGERS = ("web3.providers.HTTPProvider", "web3.providers.base.JSONBaseProvider", "web3.manager.RequestManager",
               "web3._utils.http_session_manager.HTTPSessionManager", "urllib3.connectionpool")

    def __init__(self):
        super().__init__()
        self.secrets: dict[str, str] = {}

    def add(self, url: str) -> None:
        parts = urlsplit(url)
        public = redact_url(url)
        if str(url).rstrip("/") != public:
            self.secrets[str(url)] = public
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if tail not in ("", "/"):
            self.secrets[tail] = "/<redacted>"
        if parts.username or parts.password:
            self.secrets[parts.netloc.rpartition("@")[0]] = "<redacted>"

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in sorted(self.secrets, key=len, reverse=True):  # the whole URL before its parts
                message = message.replace(secret, self.secrets[secret])
            record.msg, record.args = message, ()
        return True


_SECRETS = _SecretFilter()
for _name in _SecretFilter.LOGGERS:
    logging.getLogger(_name).addFilter(_SECRETS)


class PatientHTTPProvider(Web3.HTTPProvider):
    """An HTTPProvider that waits out an outage with backoff, up to `patience` seconds."""

    def __init__(self, url: str, *, patience: float, request_timeout: float = 30):
        super().__init__(url, request_kwargs={"timeout": request_timeout}, exception_retry_configuration=None)
        self.public_url = redact_url(url)
        self.patience = patience
        _SECRETS.add(url)

    def __str__(self) -> str:
        return f"RPC connection {self.public_url}"

    def _make_request(self, method, request_data: bytes) -> bytes:
        started, delay = None, RETRY.backoff_factor
        while True:
            try:
                return super()._make_request(method, request_data)
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status != 429 and status < 500:  # 401, 403, 404: retrying will not help
                    raise ChainError(f"the node at {self.public_url} refused {method} with HTTP {status}; "
                                     f"check --rpc-url (and its API key)") from None
                failure = f"HTTP {status}"
            except TRANSIENT_ERRORS as exc:
                failure = type(exc).__name__
            now = time.monotonic()
            if started is None:
                started = now
                if self.patience > 1:
                    log.warning("the node at %s does not answer (%s); retrying for up to %g s",
                                self.public_url, failure, self.patience)
            waited = now - started
            if waited >= self.patience:
                raise NodeUnavailable(f"the node at {self.public_url} has not answered {method} for "
                                      f"{waited:.0f} s ({failure})") from None
            time.sleep(min(delay, self.patience - waited))
            delay = min(delay * 2, MAX_BACKOFF)


def connect(rpc_url: str, *, expected_chain_id: int | None = None, request_timeout: float = 30,
            rpc_timeout: float = DEFAULT_RPC_TIMEOUT) -> Web3:
    """A Web3 on `rpc_url`, checked to answer (and to be `expected_chain_id` when given).

    The first request is tried for a few seconds only (a wrong URL should fail fast); later ones
    wait out an outage for up to `rpc_timeout` seconds.
    """
    if rpc_timeout <= 0:
        raise UsageError(f"--rpc-timeout must be positive, not {rpc_timeout:g}")
    first_patience = min(RETRY.backoff_factor * (2 ** (RETRY.retries - 1) - 1), rpc_timeout)
    provider = PatientHTTPProvider(rpc_url, patience=first_patience,
                                   request_timeout=min(request_timeout, rpc_timeout))
    w3 = Web3(provider)
    try:
        chain_id = w3.eth.chain_id
    except NodeUnavailable:
        raise ChainError(
            f"no Ethereum node answers at {provider.public_url}; start one with "
            f"`meterroot chain up --output OUT` or pass the right --rpc-url") from None
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise UsageError(
            f"the node at {provider.public_url} is chain {chain_id} but the deployment is on chain "
            f"{expected_chain_id}; pass the --rpc-url of chain {expected_chain_id}")
    provider.patience = rpc_timeout
    return w3


def public_url_of(w3: Web3) -> str:
    provider = w3.provider
    return getattr(provider, "public_url", None) or redact_url(getattr(provider, "endpoint_uri", None))


# ------------------------------------------------------------------------------ sending
@dataclass(frozen=True)
class TxResult:
    """A mined, successful, confirmed transaction."""

    tx_hash: str
    """0x-prefixed transaction hash."""
    block: int
    """Block it was mined in."""
    gas_used: int
    """Gas it used."""
    receipt: dict
    """The full receipt (logs, contractAddress, ...)."""
    resumed: bool = False
    """True when the journal already held this intent: nothing new was sent for it."""


class Sender:
    """Signs with one local key and sends transactions to one node, one at a time."""

    def __init__(self, w3: Web3, account: LocalAccount, *, confirmations: int = 1,
                 timeout: float = 120, poll_interval: float = 0.1, journal: Journal | None = None,
                 fee_caps: FeeCaps = FeeCaps(), replace_after: float = DEFAULT_REPLACE_AFTER, scope: str = ""):
        if confirmations < 1:
            raise UsageError(f"--confirmations must be at least 1, not {confirmations}")
        if replace_after <= 0:
            raise UsageError(f"--replace-after must be positive, not {replace_after:g}")
        self.w3 = w3
        self.account = account
        self.confirmations = confirmations
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.journal = journal if journal is not None else Journal(None)
        self.fee_caps = fee_caps
        self.replace_after = replace_after
        self.scope = scope
        """Part of every intent: a new scope (e.g. --reference) makes an identical call a new intent."""
        self.chain_id = w3.eth.chain_id

    @property
    def address(self) -> str:
        return self.account.address

    def send(self, call, label: str, *, gas: int | None = None) -> TxResult:
        """Send a contract call or constructor once per intent; return once mined and confirmed.

        `gas` skips the estimate (which would refuse a reverting call before it is sent). Other
        processes sending through the same journal wait their turn (Journal.turn).
        """
        with self.journal.turn():
            return self._send(call, label, gas)

    def _send(self, call, label: str, gas: int | None) -> TxResult:
        try:
            key = self._intent_key(call)
            record = self.journal.find(key)
            if record is not None and record.state == CONFIRMED:
                done = self._confirmed_result(record, label)
                if done is not None:
                    return done
            if record is not None and not record.finished:
                log.warning("%s: resuming tx %s (nonce %d) found in %s instead of sending another",
                            label, record.latest.hash, record.nonce, self.journal)
                return self._see_through(record, label, resumed=True)
            self._settle_unfinished(key)
            record = self._sign_and_journal(call, label, key, gas)
        except NodeUnavailable as exc:
            raise ChainError(f"{label}: {exc}; nothing was sent: rerun the same command when the node "
                             f"is back") from None
        try:
            self._broadcast(record, label, record.latest)
        except NodeUnavailable as exc:
            raise self._pending_error(record, label, f"{exc} while sending it") from None
        log.info("%s: sent %s (nonce %d)", label, record.latest.hash, record.nonce)
        return self._see_through(record, label)

    def _settle_unfinished(self, key: str) -> None:
        """Follow every other unfinished transaction of this sender to its end before preparing a
        new one: a new one estimated while an older one is pending could revert once that one is
        mined (a second commit of the same batch), and would take the nonce after it anyway."""
        for record in self.journal.unfinished(self.chain_id, self.address):
            if record.key != key:
                log.warning("%s: finishing tx %s (nonce %d) from %s first", record.label, record.latest.hash,
                            record.nonce, self.journal)
                try:
                    self._see_through(record, record.label, resumed=True)
                except ChainError as exc:
                    if not record.finished:  # still pending: do not queue another behind it
                        raise
                    log.warning("%s", exc)  # it failed, finally: ours may go on

    # ----------------------------------------------------------------------- preparing
    def _intent_key(self, call) -> str:
        """What the transaction does, from whom, where: built offline, no estimate, no nonce."""
        probe = call.build_transaction({"from": self.address, "chainId": self.chain_id, "nonce": 0, "gas": 0,
                                        "maxFeePerGas": 0, "maxPriorityFeePerGas": 0})
        parts = [self.scope, self.chain_id, self.address, probe.get("to") or "", probe.get("data") or "",
                 int(probe.get("value", 0))]
        return "0x" + keccak256(json.dumps(parts).encode()).hex()

    def _sign_and_journal(self, call, label: str, key: str, gas: int | None) -> IntentRecord:
        fees = self._initial_fees()
        params = {"from": self.address, "chainId": self.chain_id,
                  "nonce": self.w3.eth.get_transaction_count(self.address, "pending"), **fees.fields()}
        try:
            params["gas"] = gas if gas is not None else self._estimate(call, params)
            tx = call.build_transaction(params)
        except ContractLogicError as exc:
            raise ChainError(f"{label} would revert: {decode_revert(exc.data)}; not sent") from exc
        except Web3RPCError as exc:  # e.g. the sender cannot pay for the gas
            raise ChainError(f"{label}: the node refused to prepare it: {exc.message}; not sent") from exc
        return self.journal.signed(key, label, self.chain_id, self.address, tx, self._sign(tx, fees))

    def _estimate(self, call, params: dict) -> int:
        estimate = call.estimate_gas({k: v for k, v in params.items() if k != "nonce"})
        return estimate + estimate * GAS_MARGIN_PERCENT // 100  # rounded down; a few gas either way

    def _base_fee(self) -> int | None:
        """The base fee the next block asks (the pending block's, where the node has one)."""
        latest = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if latest is None:
            return None
        try:
            pending = self.w3.eth.get_block("pending").get("baseFeePerGas")
        except (Web3RPCError, ValueError):
            pending = None
        return max(latest, pending or 0)

    def _initial_fees(self) -> Fees:
        base_fee = self._base_fee()
        if base_fee is None:
            return initial_fees(None, None, self.w3.eth.gas_price, self.fee_caps)
        try:
            tip = self.w3.eth.max_priority_fee
        except Web3RPCError:  # a node without eth_maxPriorityFeePerGas
            tip = None
        return initial_fees(base_fee, tip, None, self.fee_caps)

    def _sign(self, tx: dict, fees: Fees) -> Attempt:
        tx = {k: v for k, v in tx.items() if k not in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas")}
        signed = self.account.sign_transaction({**tx, **fees.fields()})
        return Attempt(hash="0x" + bytes(signed.hash).hex(), raw="0x" + bytes(signed.raw_transaction).hex(),
                       max_fee=fees.max_fee, priority_fee=fees.priority_fee)

    # ----------------------------------------------------------------------- broadcasting
    def _broadcast(self, record: IntentRecord, label: str, attempt: Attempt, state: str = SENT) -> str:
        """Send one signed attempt; ACCEPTED, NONCE_USED, FEE_TOO_LOW or REFUSED.

        Only a first attempt refused outright raises: then nothing of the intent is pending.
        """
        try:
            self.w3.eth.send_raw_transaction(attempt.raw)
        except Web3RPCError as exc:
            text = str(exc.message or exc).lower()
            if "already" in text or self._known(attempt.hash):  # "already known", "already imported"
                pass  # a retried send the node had received: same hash, nothing new
            elif "nonce too low" in text or "nonce is too low" in text:
                log.info("%s: nonce %d is already used; looking for our transactions", label, record.nonce)
                return NONCE_USED
            elif any(word in text for word in _FEE_REFUSALS):
                log.warning("%s: the node refused tx %s for its fee (%s)", label, attempt.hash, exc.message)
                return FEE_TOO_LOW
            elif state == SENT and len(record.attempts) == 1:
                self.journal.note(record, SUPERSEDED, attempt.hash, reason=f"refused: {exc.message}")
                raise ChainError(f"{label}: the node refused tx {attempt.hash}: {exc.message}; nothing of "
                                 f"it is pending (journal {self.journal})") from None
            else:
                log.warning("%s: the node refused tx %s: %s", label, attempt.hash, exc.message)
                return REFUSED
        self.journal.note(record, state, attempt.hash)
        return ACCEPTED

    def _known(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)
            return True
        except TransactionNotFound:
            return False

    def _replace(self, record: IntentRecord, label: str, stuck_for: float) -> bool:
        """Replace the latest attempt at the same nonce with bumped fees; False when the caps forbid."""
        latest = record.latest
        previous = Fees(latest.max_fee, latest.priority_fee, legacy="gasPrice" in record.tx)
        fees = bumped_fees(previous, self._base_fee(), self.fee_caps)
        if fees is None:
            log.warning("%s: tx %s (nonce %d) is stuck with %s and the fee caps leave no room for a bump; "
                        "it waits (rerun with a higher --max-fee-gwei / --priority-fee-gwei to replace it)",
                        label, latest.hash, record.nonce, previous.describe())
            return False
        attempt = self._sign(record.tx, fees)
        self.journal.signed(record.key, label, record.chain_id, record.sender, record.tx, attempt,
                            replaces=latest.hash)
        log.warning("%s: tx %s unmined for %.0f s; replaced at nonce %d by tx %s with %s", label,
                    latest.hash, stuck_for, record.nonce, attempt.hash, fees.describe())
        self._broadcast(record, label, attempt)
        return True

    # ----------------------------------------------------------------------- waiting
    def _see_through(self, record: IntentRecord, label: str, *, resumed: bool = False) -> TxResult:
        try:
            receipt, attempt = self._await(record, label)
        except NodeUnavailable as exc:
            raise self._pending_error(record, label, str(exc)) from None
        except Web3RPCError as exc:  # e.g. "header not found" while the node reorganises
            raise self._pending_error(record, label, f"the node answered an error ({exc.message})") from None
        return TxResult(tx_hash=attempt.hash, block=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                        receipt=receipt, resumed=resumed)

    def _pending_error(self, record: IntentRecord, label: str, why: str) -> ChainError:
        hashes = ", ".join(a.hash for a in record.attempts)
        return ChainError(f"{label}: {why}; tx {record.latest.hash} (nonce {record.nonce}; all attempts: "
                          f"{hashes}) may be pending and is recorded in {self.journal}: rerun the same "
                          f"command to resume it (it is looked up, never sent twice)")

    def _await(self, record: IntentRecord, label: str) -> tuple[dict, Attempt]:
        deadline = time.monotonic() + self.timeout
        last_sent = last_rebroadcast = time.monotonic()
        nonce_used_since = None
        capped = False
        while True:
            receipt, attempt = self._find_receipt(record)
            now = time.monotonic()
            if receipt is not None:
                if record.state != MINED or record.block != receipt["blockNumber"]:
                    self.journal.note(record, MINED, attempt.hash, block=receipt["blockNumber"])
                depth = self.w3.eth.block_number - receipt["blockNumber"] + 1
                if depth >= self.confirmations and self._still_canonical(receipt, attempt):
                    if receipt["status"] == 1:
                        self.journal.note(record, CONFIRMED, attempt.hash, block=receipt["blockNumber"])
                        return receipt, attempt
                    self.journal.note(record, REVERTED, attempt.hash, block=receipt["blockNumber"])
                    raise ChainError(f"{label} reverted in tx {attempt.hash} (block {receipt['blockNumber']}): "
                                     f"{self._replay_revert(record.tx, receipt)}")
                if now > deadline:
                    raise ChainError(
                        f"{label}: tx {attempt.hash} mined in block {receipt['blockNumber']} has {max(depth, 0)} "
                        f"of {self.confirmations} confirmations after {self.timeout:g} s; rerun the same "
                        f"command to keep waiting (journal {self.journal})")
            elif self.w3.eth.get_transaction_count(record.sender, "latest") > record.nonce:
                # Our nonce is used but no receipt of ours is seen: a node indexing its block, a
                # load-balanced endpoint lagging, or truly another transaction. Only a long look
                # says which; until then nothing is final (a rerun resumes).
                nonce_used_since = nonce_used_since or now
                if now - nonce_used_since >= SUPERSEDED_AFTER:
                    self.journal.note(record, SUPERSEDED)
                    raise ChainError(
                        f"{label}: nonce {record.nonce} of {record.sender} was used by a transaction that is "
                        f"none of ours ({', '.join(a.hash for a in record.attempts)}): another program signs "
                        f"with this key; nothing of ours was mined; rerun to send it anew")
                if now > deadline:
                    raise self._pending_error(record, label, f"nonce {record.nonce} is used but no receipt of "
                                                             f"ours was found within {self.timeout:g} s")
            else:
                if not any(self._known(a.hash) for a in record.attempts):
                    if now - last_rebroadcast >= REBROADCAST_EVERY or record.state == MINED:
                        log.warning("%s: tx %s is not on the node (dropped, evicted or reorganised away); "
                                    "rebroadcasting it", label, record.latest.hash)
                        last_rebroadcast = now
                        if self._broadcast(record, label, record.latest, REBROADCAST) == FEE_TOO_LOW:
                            if not capped or now - last_sent >= self.replace_after:
                                capped = not self._replace(record, label, now - last_sent)
                                last_sent = now
                elif now - last_sent >= self.replace_after and not capped:
                    capped = not self._replace(record, label, now - last_sent)
                    last_sent = now
                if now > deadline:
                    raise ChainError(
                        f"{label}: tx {record.latest.hash} was sent but not mined within {self.timeout:g} s; "
                        f"it is still pending at nonce {record.nonce} (journal {self.journal}): rerun the "
                        f"same command to resume it; it is never sent twice")
            time.sleep(self.poll_interval)

    def _find_receipt(self, record: IntentRecord) -> tuple[dict | None, Attempt | None]:
        for attempt in reversed(record.attempts):
            receipt = self._receipt_or_none(attempt.hash)
            if receipt is not None:
                return receipt, attempt
        return None, None

    def _still_canonical(self, receipt: dict, attempt: Attempt) -> bool:
        """The receipt is still the node's, and its block still on the canonical chain."""
        current = self._receipt_or_none(attempt.hash)
        if current is None or current["blockHash"] != receipt["blockHash"]:
            return False
        block = self.w3.eth.get_block(receipt["blockNumber"])
        return block is not None and block["hash"] == receipt["blockHash"]

    def _confirmed_result(self, record: IntentRecord, label: str) -> TxResult | None:
        """The journal's confirmed transaction, if the chain still agrees; None to send anew."""
        attempt = record.attempt(record.final_hash)
        receipt = self._receipt_or_none(attempt.hash)
        if receipt is not None and receipt["status"] == 1 and self._still_canonical(receipt, attempt):
            log.info("%s: already done in tx %s (block %d), per %s", label, attempt.hash,
                     receipt["blockNumber"], self.journal)
            return TxResult(tx_hash=attempt.hash, block=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                            receipt=receipt, resumed=True)
        log.warning("%s: tx %s was confirmed but is no longer on the chain (a deep reorganisation); "
                    "following it again", label, attempt.hash)
        record.state = SENT
        return None

    def _receipt_or_none(self, tx_hash: str) -> dict | None:
        try:
            return dict(self.w3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            return None

    def _replay_revert(self, tx: dict, receipt: dict) -> str:
        """Why a mined tx reverted: replay it as a call on the state of its block."""
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if tx.get(k) not in (None, "", "0x", b"")}
        try:
            self.w3.eth.call(call, block_identifier=receipt["blockNumber"])
        except ContractLogicError as exc:
            return decode_revert(exc.data)
        return "reverted (the replay on its block succeeds; state changed within the block)"
