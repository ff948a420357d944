"""A deployed SettlementRegistry (v2, SPEC §6) and its CounterNFT: every view, and every
transaction, each sent through Sender.send."""
from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError
from web3.logs import DISCARD  # the token's Transfer log sits in the same receipt

from settlement.errors import ChainError, UsageError
from sinks.chain.artifacts import COUNTER_NFT, REGISTRY, TEST_TOKEN, decode_revert
from sinks.chain.deployment import Deployment, checksum, contract
from sinks.chain.keys import DEV_CHAIN_IDS
from sinks.chain.rpc import Sender, TxResult
from sinks.chain.spend_permits import SpendPermit, digest, recover_signer

COMMITTER_ROLE = Web3.keccak(text="COMMITTER_ROLE")
GOVERNANCE_ROLE = Web3.keccak(text="GOVERNANCE_ROLE")
DEFAULT_ADMIN_ROLE = b"\x00" * 32

LIMITS = ("none", "permit", "deposit", "committed totals")
"""SettlementRegistry.Limit by value: what held a claim below its leaf."""
DISPUTE_STATES = ("none", "open", "upheld", "rejected", "expired")
"""SettlementRegistry.DisputeState by value."""


ERC1271_MAGIC = bytes.fromhex("1626ba7e")
"""What an ERC-1271 wallet's isValidSignature returns for a signature it accepts."""
ERC1271_ABI = [{"type": "function", "name": "isValidSignature", "stateMutability": "view",
                "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
                "outputs": [{"name": "", "type": "bytes4"}]}]


def call_view(fn, label: str):
    """Call a view; a revert becomes a ChainError naming the decoded custom error."""
    try:
        return fn.call()
    except ContractLogicError as exc:
        raise ChainError(f"{label} reverted: {decode_revert(exc.data)}") from exc


def reason_hash(reason: str | bytes) -> bytes:
    """The 32-byte hash revokeBatch records: keccak256 of the reason text (UTF-8), or 32 bytes as given."""
    if isinstance(reason, bytes) and len(reason) == 32:
        return reason
    text = reason.encode() if isinstance(reason, str) else bytes(reason)
    return Web3.keccak(text)


@dataclass(frozen=True)
class OnChainBatch:
    """What the registry stores about one batch."""

    number: int
    """Batch number."""
    root: bytes
    """Committed Merkle root (32 zero bytes when never committed)."""
    total: int
    """The committed total (Σ amount_wei) of a live batch; 0 for a revoked one (see its event)."""
    cumulative_total: int
    """Σ committed totals of batches 1..number: the ceiling of what claims through it pay out."""
    leaf_count: int
    """Leaves in the batch's tree, as committed."""
    committed_at: int
    """Block timestamp of the commit; 0 when never committed."""
    revoked: bool
    """Revoked by governance during its challenge period (itself or an earlier batch)."""
    claimable_at: int
    """committed_at + challenge period; 0 when never committed."""

    @property
    def committed(self) -> bool:
        return self.committed_at != 0

    @property
    def live(self) -> bool:
        return self.committed_at != 0 and not self.revoked


@dataclass(frozen=True)
class CommittedBatchEvent:
    """The BatchCommitted event of a batch's last commit: what is emitted but not stored."""

    number: int
    """Batch number."""
    root: bytes
    """Root committed."""
    total: int
    """Total committed."""
    leaf_count: int
    """Leaf count committed."""
    manifest_hash: bytes
    """keccak256 of the batch's manifest.json bytes."""
    data_uri: str
    """Where the tree dump and manifest are published ('' when none)."""
    tx_hash: str
    """The commit transaction."""
    block: int
    """Its block."""


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
    """What the leaf still owes the payee after this claim; claimable once `cause` allows."""
    cause: str
    """What held the claim below the leaf: one of LIMITS ('none' without a shortfall)."""
    collected: int
    """What the payee has collected from the consumer in total after this claim."""
    tx_hash: str
    """The claim transaction."""
    gas_used: int
    """Gas the claim used."""


@dataclass(frozen=True)
class PendingWithdrawal:
    """A consumer's withdrawal request."""

    amount: int
    """Requested wei (0: none)."""
    unlock_at: int
    """From when it can be executed (0: none)."""
    lapses_at: int
    """After when it can no longer be executed (unlock_at + withdrawal window; 0: none)."""


@dataclass(frozen=True)
class ProviderStake:
    """A provider's stake."""

    staked: int
    """Tokens staked (slashable), the unstaking part included."""
    unstaking: int
    """Part of `staked` requested for unstaking: no longer counts towards the minimum."""
    unlock_at: int
    """When the unstake can be executed (0: none requested)."""

    @property
    def bonded(self) -> int:
        """What counts towards minProviderStake."""
        return self.staked - self.unstaking


@dataclass(frozen=True)
class DisputeInfo:
    """One dispute."""

    id: int
    """Dispute id (from 1)."""
    batch: int
    """Disputed batch."""
    consumer: str
    """Consumer of the disputed leaf."""
    provider: str
    """Provider (payee) of the disputed leaf."""
    challenger: str
    """Who opened it and bonded."""
    bond: int
    """Bonded wei."""
    state: str
    """One of DISPUTE_STATES."""
    resolvable_until: int
    """Governance's deadline: the batch's challenge period plus the dispute period."""


@dataclass(frozen=True)
class Counters:
    """A consumer's Counter NFT."""

    token_id: int
    """Its token id (0: not minted yet)."""
    wei_paid: int
    """Wei its deposit has paid out in claims."""
    claims: int
    """Claims that paid something."""
    last_batch: int
    """Highest batch a claim paid through."""


class Registry:
    """Reads from and sends to one deployed registry; `sender` is needed only to send."""

    def __init__(self, w3: Web3, deployment: Deployment, sender: Sender | None = None):
        self.w3 = w3
        self.deployment = deployment
        self.sender = sender
        self.contract = contract(w3, REGISTRY, deployment.registry)
        self.token = contract(w3, TEST_TOKEN, deployment.token)  # only ERC-20 functions are used unless minting
        self.counter_nft = contract(w3, COUNTER_NFT, deployment.counter_nft) if deployment.counter_nft else None

    def require_code(self) -> "Registry":
        """Fail clearly when the deployment's registry has no code on this node."""
        if not self.w3.eth.get_code(self.deployment.registry):
            raise ChainError(
                f"no contract at registry {self.deployment.registry} on chain {self.deployment.chain_id} "
                f"(a local chain restarted without its state?); deploy again with `meterroot chain deploy`")
        return self

    def as_sender(self, sender: Sender) -> "Registry":
        """The same registry driven by another key."""
        return Registry(self.w3, self.deployment, sender)

    # ------------------------------------------------------------------------ batch views
    def batch(self, number: int) -> OnChainBatch:
        root, total, cumulative, leaf_count, committed_at, revoked = \
            self.contract.functions.batchInfo(number).call()
        claimable_at = committed_at + self.deployment.challenge_period if committed_at else 0
        return OnChainBatch(number, bytes(root), total, cumulative, leaf_count, committed_at, revoked,
                            claimable_at)

    def latest_batch(self) -> int:
        return self.contract.functions.latestBatch().call()

    def totals(self) -> tuple[int, int]:
        """(Σ committed totals of the live batches, Σ paid out by claims)."""
        committed, paid_out = self.contract.functions.totals().call()
        return committed, paid_out

    def committed_event(self, number: int) -> CommittedBatchEvent | None:
        """The BatchCommitted event of batch `number`'s last commit (None when never committed)."""
        logs = self.contract.events.BatchCommitted().get_logs(
            from_block=self.deployment.block, argument_filters={"batch": number})
        if not logs:
            return None
        last = max(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))
        a = last["args"]
        return CommittedBatchEvent(number, bytes(a["root"]), a["total"], a["leafCount"], bytes(a["manifestHash"]),
                                   a["dataURI"], "0x" + bytes(last["transactionHash"]).hex(), last["blockNumber"])

    # ---------------------------------------------------------------------- consumer views
    def deposit_of(self, consumer: str) -> int:
        return self.contract.functions.deposits(checksum(consumer, "consumer")).call()

    def available(self, consumer: str) -> int:
        """The deposit less a pending (not lapsed) withdrawal."""
        return self.contract.functions.available(checksum(consumer, "consumer")).call()

    def collected(self, consumer: str, payee: str) -> int:
        return self.contract.functions.collected(checksum(consumer, "consumer"), checksum(payee, "payee")).call()

    def permitted(self, consumer: str, payee: str) -> int:
        """The highest spend permit stored for (consumer, payee)."""
        return self.contract.functions.permitted(checksum(consumer, "consumer"), checksum(payee, "payee")).call()

    def permit_digest(self, consumer: str, payee: str, cumulative: int) -> bytes:
        """The EIP-712 digest the registry checks a permit's signature against."""
        return bytes(self.contract.functions.permitDigest(
            checksum(consumer, "consumer"), checksum(payee, "payee"), cumulative).call())

    def permit_signer(self, permit: SpendPermit) -> str | None:
        """Who made `permit` acceptable to this registry now, as submitPermit decides: the
        consumer (an EOA key, or its ERC-1271 wallet accepting the signature) or a signer it
        authorised; None when no one did (or the permit names another chain or registry)."""
        d = self.deployment
        if permit.chain_id != d.chain_id or permit.registry != d.registry:
            return None
        if self.w3.eth.get_code(permit.consumer):
            wallet = self.w3.eth.contract(address=permit.consumer, abi=ERC1271_ABI)
            permit_digest = digest(d.chain_id, d.registry, permit.consumer, permit.payee, permit.cumulative_amount)
            try:
                if bytes(wallet.functions.isValidSignature(permit_digest, permit.signature).call()) == ERC1271_MAGIC:
                    return permit.consumer
            except (ContractLogicError, BadFunctionCallOutput, ValueError):  # not a wallet: try the signers
                pass
        try:
            signer = recover_signer(permit)
        except UsageError:
            return None
        if signer == permit.consumer or self.is_authorized_signer(permit.consumer, signer):
            return signer
        return None

    def permit_events(self, consumer: str | None = None, payee: str | None = None) -> list[dict]:
        """The PermitSubmitted events (consumer, payee, cumulativeAmount, signer, block, tx_hash)."""
        filters = {k: checksum(v, k) for k, v in (("consumer", consumer), ("payee", payee)) if v}
        logs = self.contract.events.PermitSubmitted().get_logs(from_block=self.deployment.block,
                                                               argument_filters=filters)
        return [{**dict(e["args"]), "block": e["blockNumber"], "tx_hash": "0x" + bytes(e["transactionHash"]).hex()}
                for e in logs]

    def pending_withdrawal(self, consumer: str) -> tuple[int, int]:
        """(amount, unlock time) of the consumer's withdrawal request; (0, 0) when none."""
        amount, unlock_at = self.contract.functions.withdrawals(checksum(consumer, "consumer")).call()
        return amount, unlock_at

    def withdrawal(self, consumer: str) -> PendingWithdrawal:
        amount, unlock_at = self.pending_withdrawal(consumer)
        lapses_at = unlock_at + self.deployment.withdrawal_window if amount else 0
        return PendingWithdrawal(amount, unlock_at if amount else 0, lapses_at)

    def signer_valid_until(self, consumer: str, signer: str) -> int:
        """Until when `signer` may sign for `consumer` (0: never authorised; 2^64-1: until revoked)."""
        return self.contract.functions.signerValidUntil(checksum(consumer, "consumer"),
                                                        checksum(signer, "signer")).call()

    def is_authorized_signer(self, consumer: str, signer: str) -> bool:
        return self.contract.functions.isAuthorizedSigner(checksum(consumer, "consumer"),
                                                          checksum(signer, "signer")).call()

    def counters(self, consumer: str) -> Counters:
        """The consumer's Counter NFT counters."""
        token_id, wei_paid, claims, last_batch = self._nft().functions.countersOf(
            checksum(consumer, "consumer")).call()
        return Counters(token_id, wei_paid, claims, last_batch)

    def token_uri(self, token_id: int) -> str:
        return call_view(self._nft().functions.tokenURI(token_id), f"tokenURI({token_id})")

    def _nft(self):
        if self.counter_nft is None:
            raise UsageError(f"the deployment of registry {self.deployment.registry} names no Counter NFT; "
                             f"redeploy with `meterroot chain deploy`")
        return self.counter_nft

    # ---------------------------------------------------------------------- provider views
    def stakes(self, provider: str) -> ProviderStake:
        staked, unstaking, unlock_at = self.contract.functions.stakes(checksum(provider, "provider")).call()
        return ProviderStake(staked, unstaking, unlock_at)

    def open_disputes(self, consumer: str, provider: str) -> int:
        """Open disputes freezing the (consumer, provider) leaf's claims."""
        return self.contract.functions.openDisputes(checksum(consumer, "consumer"),
                                                    checksum(provider, "provider")).call()

    def dispute(self, dispute_id: int) -> DisputeInfo:
        batch, consumer, provider, challenger, bond, state, until = call_view(
            self.contract.functions.disputes(dispute_id), f"disputes({dispute_id})")
        return DisputeInfo(dispute_id, batch, consumer, provider, challenger, bond, DISPUTE_STATES[state], until)

    def dispute_count(self) -> int:
        return self.contract.functions.disputeCount().call()

    def disputes_of(self, consumer: str | None = None) -> list[DisputeInfo]:
        """Every dispute (of `consumer`'s leaves, when given), from the DisputeOpened events."""
        filters = {"consumer": checksum(consumer, "consumer")} if consumer else {}
        logs = self.contract.events.DisputeOpened().get_logs(from_block=self.deployment.block,
                                                             argument_filters=filters)
        return [self.dispute(e["args"]["id"]) for e in sorted(logs, key=lambda e: e["args"]["id"])]

    # ------------------------------------------------------------------------- role views
    def has_role(self, role: bytes, account: str) -> bool:
        return self.contract.functions.hasRole(role, checksum(account, "account")).call()

    def default_admin(self) -> str:
        return self.contract.functions.defaultAdmin().call()

    def pending_default_admin(self) -> tuple[str, int]:
        """(new admin, schedule time) of a pending two-step transfer; (0x0, 0) when none."""
        new_admin, schedule = self.contract.functions.pendingDefaultAdmin().call()
        return new_admin, schedule

    # ---------------------------------------------------------------------- other views
    def token_balance(self, owner: str) -> int:
        return self.token.functions.balanceOf(checksum(owner, "address")).call()

    def block_timestamp(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    # --------------------------------------------------------------------------- transactions
    def _sender(self) -> Sender:
        if self.sender is None:
            raise UsageError("this registry handle is read-only; give it a Sender to send transactions")
        return self.sender

    def _send(self, call, label: str, **kwargs) -> TxResult:
        return self._sender().send(call, label, **kwargs)

    # batches ---------------------------------------------------------------------------
    def commit_batch(self, number: int, root: bytes, total: int, leaf_count: int,
                     manifest_hash: bytes, data_uri: str = "") -> TxResult:
        return self._send(self.contract.functions.commitBatch(number, root, total, leaf_count, manifest_hash,
                                                              data_uri),
                          f"commitBatch({number})")

    def revoke_batch(self, number: int, reason: str | bytes = b"") -> TxResult:
        """Revoke batch `number` and every later one; `reason` text is recorded as its keccak256."""
        return self._send(self.contract.functions.revokeBatch(number, reason_hash(reason)),
                          f"revokeBatch({number})")

    # permits -----------------------------------------------------------------------------
    def submit_permit(self, permit: SpendPermit) -> TxResult:
        self._check_permit_domain(permit)
        return self._send(self.contract.functions.submitPermit(
            permit.consumer, permit.payee, permit.cumulative_amount, permit.signature),
            f"submitPermit({permit.consumer} -> {permit.payee}, {permit.cumulative_amount})")

    def _check_permit_domain(self, permit: SpendPermit) -> None:
        d = self.deployment
        if permit.chain_id != d.chain_id or permit.registry != d.registry:
            raise UsageError(f"the permit of {permit.consumer} -> {permit.payee} is for registry {permit.registry} "
                             f"on chain {permit.chain_id}, not registry {d.registry} on chain {d.chain_id}")

    def authorize_signer(self, signer: str) -> TxResult:
        """Let `signer` sign permits for the sender (the consumer)."""
        signer = checksum(signer, "signer")
        return self._send(self.contract.functions.authorizeSigner(signer), f"authorizeSigner({signer})")

    def revoke_signer(self, signer: str) -> TxResult:
        """Revoke `signer` for the sender; it takes effect after the thaw period."""
        signer = checksum(signer, "signer")
        return self._send(self.contract.functions.revokeSigner(signer), f"revokeSigner({signer})")

    # claims ------------------------------------------------------------------------------
    def claim(self, number: int, consumer: str, payee: str, cumulative: int, proof: list[bytes],
              *, gas: int | None = None) -> ClaimResult:
        consumer, payee = checksum(consumer, "consumer"), checksum(payee, "payee")
        result = self._send(self.contract.functions.claim(number, consumer, payee, cumulative, proof),
                            f"claim(batch {number}, {consumer} -> {payee})", gas=gas)
        return self._claim_result(number, consumer, payee, result)

    def claim_with_permit(self, number: int, consumer: str, payee: str, cumulative: int, proof: list[bytes],
                          permit: SpendPermit, *, gas: int | None = None) -> ClaimResult:
        """Submit `permit` (when higher than the stored one) and claim, in one transaction."""
        consumer, payee = checksum(consumer, "consumer"), checksum(payee, "payee")
        self._check_permit_domain(permit)
        if (permit.consumer, permit.payee) != (consumer, payee):
            raise UsageError(f"the permit is for {permit.consumer} -> {permit.payee}, not the claimed "
                             f"{consumer} -> {payee}")
        result = self._send(self.contract.functions.claimWithPermit(
            number, consumer, payee, cumulative, proof, permit.cumulative_amount, permit.signature),
            f"claimWithPermit(batch {number}, {consumer} -> {payee})", gas=gas)
        return self._claim_result(number, consumer, payee, result)

    def _claim_result(self, number: int, consumer: str, payee: str, result: TxResult) -> ClaimResult:
        claimed = self.contract.events.Claimed().process_receipt(result.receipt, errors=DISCARD)
        shortfalls = self.contract.events.Shortfall().process_receipt(result.receipt, errors=DISCARD)
        paid = claimed[0]["args"]["amount"] if claimed else 0
        shortfall = shortfalls[0]["args"]["unpaid"] if shortfalls else 0
        cause = LIMITS[shortfalls[0]["args"]["cause"]] if shortfalls else "none"
        return ClaimResult(
            batch=number, consumer=consumer, payee=payee, paid=paid, shortfall=shortfall, cause=cause,
            collected=self.collected(consumer, payee), tx_hash=result.tx_hash, gas_used=result.gas_used)

    # tokens ------------------------------------------------------------------------------
    def mint(self, to: str, amount: int) -> TxResult:
        """Mint test tokens; only a deployment made with --test-token has a mintable token."""
        if not self.deployment.test_token:
            raise UsageError(f"--mint needs a deployment with --test-token; token {self.deployment.token} "
                             f"is a real ERC-20: acquire and approve it instead")
        return self._send(self.token.functions.mint(checksum(to, "address"), amount), f"mint({amount})")

    def _fund(self, amount: int, mint: bool, purpose: str) -> None:
        """Mint (test token only) and approve `amount` of the sender's tokens for the registry.

        The mint and the approval belong to the transaction they fund (`purpose`): the journal
        takes them as part of that intent, so funding a second, different operation with the same
        amount is not mistaken for a repeat of the first (one transaction per intent)."""
        sender = self._sender()
        scope = sender.scope
        sender.scope = f"{scope}|funds {purpose}"
        try:
            if mint:
                self.mint(sender.address, amount)
            allowance = self.token.functions.allowance(sender.address, self.deployment.registry).call()
            if allowance < amount:
                sender.send(self.token.functions.approve(self.deployment.registry, amount), f"approve({amount})")
        finally:
            sender.scope = scope

    @staticmethod
    def _positive(amount: int, what: str) -> None:
        if not isinstance(amount, int) or amount <= 0:
            raise UsageError(f"the {what} must be a positive number of wei, not {amount!r}")

    # deposits ----------------------------------------------------------------------------
    def deposit(self, amount: int, *, mint: bool = False) -> TxResult:
        """Deposit `amount` of the sender's tokens for the sender (approving the registry first)."""
        self._positive(amount, "deposit amount")
        self._fund(amount, mint, f"deposit({amount})")
        return self._send(self.contract.functions.deposit(amount), f"deposit({amount})")

    def deposit_for(self, consumer: str, amount: int, *, mint: bool = False) -> TxResult:
        """Deposit `amount` of the sender's tokens for `consumer` (approving the registry first).

        `mint` first mints the amount to the sender (test token only).
        """
        self._positive(amount, "deposit amount")
        consumer = checksum(consumer, "consumer")
        self._fund(amount, mint, f"depositFor({consumer}, {amount})")
        return self._send(self.contract.functions.depositFor(consumer, amount),
                          f"depositFor({consumer}, {amount})")

    def request_withdrawal(self, amount: int) -> TxResult:
        return self._send(self.contract.functions.requestWithdrawal(amount), f"requestWithdrawal({amount})")

    def cancel_withdrawal(self) -> TxResult:
        return self._send(self.contract.functions.cancelWithdrawal(), "cancelWithdrawal()")

    def withdraw(self) -> TxResult:
        return self._send(self.contract.functions.withdraw(), "withdraw()")

    # stakes ------------------------------------------------------------------------------
    def stake(self, amount: int, *, provider: str | None = None, mint: bool = False) -> TxResult:
        """Stake `amount` of the sender's tokens for `provider` (default: the sender)."""
        self._positive(amount, "stake")
        if provider is not None:
            provider = checksum(provider, "provider")
        self._fund(amount, mint, f"stakeFor({provider}, {amount})" if provider else f"stake({amount})")
        if provider is None:
            return self._send(self.contract.functions.stake(amount), f"stake({amount})")
        return self._send(self.contract.functions.stakeFor(provider, amount), f"stakeFor({provider}, {amount})")

    def request_unstake(self, amount: int) -> TxResult:
        return self._send(self.contract.functions.requestUnstake(amount), f"requestUnstake({amount})")

    def unstake(self) -> TxResult:
        return self._send(self.contract.functions.unstake(), "unstake()")

    # disputes ----------------------------------------------------------------------------
    def open_dispute(self, number: int, consumer: str, provider: str, evidence_hash: bytes,
                     *, mint: bool = False) -> tuple[int, TxResult]:
        """Bond the dispute bond (approving it first) and dispute a leaf; returns (dispute id, tx)."""
        consumer, provider = checksum(consumer, "consumer"), checksum(provider, "provider")
        self._fund(self.deployment.dispute_bond or self.contract.functions.disputeBond().call(), mint,
                   f"openDispute({number}, {consumer}, {provider}, 0x{bytes(evidence_hash).hex()})")
        result = self._send(self.contract.functions.openDispute(number, consumer, provider, evidence_hash),
                            f"openDispute(batch {number}, {consumer} -> {provider})")
        [opened] = self.contract.events.DisputeOpened().process_receipt(result.receipt, errors=DISCARD)
        return opened["args"]["id"], result

    def resolve_dispute(self, dispute_id: int, upheld: bool, slash: int = 0) -> TxResult:
        return self._send(self.contract.functions.resolveDispute(dispute_id, upheld, slash),
                          f"resolveDispute({dispute_id}, {'upheld' if upheld else 'rejected'}, {slash})")

    def expire_dispute(self, dispute_id: int) -> TxResult:
        return self._send(self.contract.functions.expireDispute(dispute_id), f"expireDispute({dispute_id})")

    # roles -------------------------------------------------------------------------------
    # ------------------------------------------------------------------ availability SLA (SPEC §14)
    def availability_feed(self, provider: str) -> str:
        return self.contract.functions.availabilityFeed(checksum(provider, "provider")).call()

    def downtime_slashed(self, provider: str, epoch: int) -> bool:
        return self.contract.functions.downtimeSlashed(checksum(provider, "provider"), epoch).call()

    def set_availability_feed(self, provider: str, feed: str) -> TxResult:
        provider, feed = checksum(provider, "provider"), checksum(feed, "feed")
        return self._send(self.contract.functions.setAvailabilityFeed(provider, feed),
                          f"setAvailabilityFeed({provider}, {feed})")

    def slash_for_downtime(self, provider: str, epoch: int) -> TxResult:
        provider = checksum(provider, "provider")
        return self._send(self.contract.functions.slashForDowntime(provider, epoch),
                          f"slashForDowntime({provider}, epoch {epoch})")

    def grant_role(self, role: bytes, account: str) -> TxResult:
        account = checksum(account, "account")
        return self._send(self.contract.functions.grantRole(role, account), f"grantRole(0x{role.hex()}, {account})")

    def revoke_role(self, role: bytes, account: str) -> TxResult:
        account = checksum(account, "account")
        return self._send(self.contract.functions.revokeRole(role, account), f"revokeRole(0x{role.hex()}, {account})")

    def renounce_role(self, role: bytes) -> TxResult:
        sender = self._sender().address
        return self._send(self.contract.functions.renounceRole(role, sender), f"renounceRole(0x{role.hex()})")

    def begin_admin_transfer(self, new_admin: str) -> TxResult:
        """Step one of the two-step admin transfer; the new admin accepts after the admin delay."""
        new_admin = checksum(new_admin, "new admin")
        return self._send(self.contract.functions.beginDefaultAdminTransfer(new_admin),
                          f"beginDefaultAdminTransfer({new_admin})")

    def accept_admin_transfer(self) -> TxResult:
        return self._send(self.contract.functions.acceptDefaultAdminTransfer(), "acceptDefaultAdminTransfer()")

    def cancel_admin_transfer(self) -> TxResult:
        return self._send(self.contract.functions.cancelDefaultAdminTransfer(), "cancelDefaultAdminTransfer()")

    def change_admin_delay(self, seconds: int) -> TxResult:
        """Schedule a new admin-transfer delay (it takes effect after OpenZeppelin's wait)."""
        return self._send(self.contract.functions.changeDefaultAdminDelay(seconds),
                          f"changeDefaultAdminDelay({seconds})")

    def admin_delay(self) -> int:
        return self.contract.functions.defaultAdminDelay().call()


def advance_time(w3: Web3, seconds: int) -> int:
    """Move a development chain's clock forward and mine a block; returns the new timestamp."""
    chain_id = w3.eth.chain_id
    if chain_id not in DEV_CHAIN_IDS:
        raise UsageError(f"only a development chain ({sorted(DEV_CHAIN_IDS)}) can skip time, not chain {chain_id}")
    w3.provider.make_request("evm_increaseTime", [int(seconds)])
    w3.provider.make_request("evm_mine", [])
    return w3.eth.get_block("latest")["timestamp"]
