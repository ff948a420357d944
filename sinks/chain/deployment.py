"""Deploying the registry (and, on development chains, a test token) and the deployment file.

The deployment file is the JSON every other `meterroot chain` command starts from: which chain,
which registry and token, where it was deployed, and the node it was deployed through.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from eth_utils import is_address, to_checksum_address
from web3 import Web3

from settlement.errors import UsageError
from sinks.chain.artifacts import REGISTRY, TEST_TOKEN, load_artifact
from sinks.chain.keys import DEV_CHAIN_IDS
from sinks.chain.rpc import Sender, is_public_url

REGISTRY_VERSION = 2
"""The SettlementRegistry interface this code speaks (SPEC §6 v2); older deployment files are refused."""

DAY = 86_400
MAX_PERIOD = 365 * DAY
"""The registry's bound on every period (SettlementRegistry.MAX_PERIOD)."""
DEFAULT_CHALLENGE_PERIOD = DAY
"""One day during which governance can revoke, and anyone dispute, a committed batch."""
DEFAULT_MAX_BATCH_DELAY = DAY
"""The committer promises to commit usage within a day."""
DEFAULT_THAW_PERIOD = 7 * DAY
"""A week between a withdrawal request and its window (> challenge + max batch delay)."""
DEFAULT_WITHDRAWAL_WINDOW = 2 * DAY
"""Two days to execute a thawed withdrawal before it lapses."""
DEFAULT_DISPUTE_PERIOD = 3 * DAY
"""Three days after a batch's challenge period for governance to resolve its disputes."""
DEFAULT_UNSTAKE_THAW = 7 * DAY
"""A week from an unstake request to the unstake (> challenge + dispute period)."""
DEFAULT_ADMIN_DELAY = 2 * DAY
"""Delay of a two-step admin transfer (AccessControlDefaultAdminRules)."""
DEFAULT_MIN_PROVIDER_STAKE = 10**18
"""Stake a provider payee must hold to be paid: one whole token of 18 decimals."""
DEFAULT_DISPUTE_BOND = 10**17
"""Bond a challenger puts up to open a dispute: a tenth of a token of 18 decimals."""
DEFAULT_MAX_SLASH_BPS = 5_000
"""An upheld dispute slashes at most half of the provider's stake."""
DEFAULT_SLA_BPS = 9_900
"""A provider promises 99% availability per epoch (SPEC §14)."""
DEFAULT_DOWNTIME_SLASH_BPS = 100
"""An epoch below the SLA costs 1% of the provider's stake."""
DEFAULT_FEED_STALE_AFTER = DAY
"""An availability round older than a day slashes no one."""
DEFAULT_TREASURY = "0x000000000000000000000000000000000000Fee5"
"""The treasury of the SPEC's example tariff; pass the tariff's own with treasury=."""


@dataclass(frozen=True)
class Deployment:
    """Where a SettlementRegistry lives; written by `chain deploy`, read by every other command."""

    chain_id: int
    """EVM chain id the registry is deployed on."""
    registry: str
    """SettlementRegistry address (EIP-55)."""
    token: str
    """ERC-20 the deposits are made in (EIP-55)."""
    test_token: bool
    """True when `token` is the freely mintable TestToken (development chains only)."""
    block: int
    """Block of the registry's deployment: where to start looking for its events."""
    challenge_period: int
    """Seconds a committed batch waits before it can be claimed."""
    thaw_period: int
    """Seconds between a withdrawal request and the withdrawal."""
    admin: str
    """Holder of DEFAULT_ADMIN_ROLE (grants the other roles)."""
    committer: str
    """Holder of COMMITTER_ROLE at deployment."""
    governance: str
    """Holder of GOVERNANCE_ROLE at deployment."""
    counter_nft: str = ""
    """The consumers' CounterNFT, deployed by the registry's constructor (EIP-55)."""
    treasury: str = ""
    """The protocol treasury: a payee that needs no stake."""
    max_batch_delay: int = 0
    """Seconds the committer promises to take at most to commit usage."""
    withdrawal_window: int = 0
    """Seconds after the thaw during which a withdrawal can be executed before it lapses."""
    dispute_period: int = 0
    """Seconds after a batch's challenge period during which governance resolves its disputes."""
    unstake_thaw: int = 0
    """Seconds from an unstake request to the unstake."""
    admin_delay: int = 0
    """Seconds of the two-step admin transfer's delay."""
    min_provider_stake: int = 0
    """Stake a provider payee must hold to be paid (wei)."""
    dispute_bond: int = 0
    """Bond to open a dispute (wei)."""
    max_slash_bps: int = 0
    """Most of a provider's stake one upheld dispute slashes (basis points)."""
    sla_bps: int = 0
    """Availability per epoch a provider promises (basis points)."""
    downtime_slash_bps: int = 0
    """Share of its stake a provider loses for an epoch below the SLA (basis points)."""
    feed_stale_after: int = 0
    """Seconds after which an availability round slashes no one."""
    registry_version: int = 1
    """SettlementRegistry interface version (2: SPEC §6 v2); files without it are version 1."""
    rpc_url: str | None = None
    """Node the deployment went through; the default --rpc-url of later commands. Only a URL
    holding no secret is stored (no user, password, path or query: API keys live there)."""
    transactions: dict = field(default_factory=dict)
    """Deployment tx hashes by contract: {"registry": "0x..", "token": "0x.."}."""
    compiler: str = ""
    """solc version of the deployed bytecode."""
    artifact_input_hash: str = ""
    """inputHash of contracts/build/SettlementRegistry.json (identifies sources and settings)."""

    def to_json(self) -> dict:
        return asdict(self)

    def write(self, path: Path) -> None:
        """Write atomically: a temp file in the same folder, then rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.to_json(), handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> "Deployment":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"deployment file {path} does not exist; create it with `meterroot chain deploy`") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"deployment file {path} is not JSON ({exc}); was it written by `meterroot chain deploy`?") from None
        try:
            deployment = cls(**data)
        except TypeError as exc:
            raise UsageError(f"deployment file {path} has missing or unknown fields ({exc}); "
                             f"redeploy with `meterroot chain deploy`") from None
        if deployment.registry_version != REGISTRY_VERSION:
            raise UsageError(f"deployment file {path} is of a version {deployment.registry_version} registry; this "
                             f"meterroot speaks version {REGISTRY_VERSION} (spend permits, stakes, disputes): "
                             f"redeploy with `meterroot chain deploy`")
        return deployment


def checksum(value: str, what: str) -> str:
    """EIP-55 form of an address given by a user; UsageError naming `what` otherwise."""
    if not isinstance(value, str) or not is_address(value):
        raise UsageError(f"{what} {value!r} is not an address (0x + 40 hex digits, EIP-55 if mixed case)")
    return to_checksum_address(value)


def contract(w3: Web3, name: str, address: str | None = None):
    artifact = load_artifact(name)
    if address is None:
        return w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    return w3.eth.contract(address=to_checksum_address(address), abi=artifact.abi)


@dataclass(frozen=True)
class RegistryConfig:
    """The SettlementRegistry constructor's parameters other than the token and the roles."""

    treasury: str = DEFAULT_TREASURY
    """The protocol treasury (the tariff's `treasury`): a payee that needs no stake."""
    challenge_period: int = DEFAULT_CHALLENGE_PERIOD
    """Seconds a committed batch can be revoked or disputed before it is claimable (> 0)."""
    max_batch_delay: int = DEFAULT_MAX_BATCH_DELAY
    """Seconds the committer promises to take at most to commit usage."""
    thaw_period: int = DEFAULT_THAW_PERIOD
    """Seconds from a withdrawal request to its window; > challenge_period + max_batch_delay."""
    withdrawal_window: int = DEFAULT_WITHDRAWAL_WINDOW
    """Seconds a thawed withdrawal can be executed before it lapses (> 0)."""
    dispute_period: int = DEFAULT_DISPUTE_PERIOD
    """Seconds after a batch's challenge period for governance to resolve its disputes (> 0)."""
    unstake_thaw: int = DEFAULT_UNSTAKE_THAW
    """Seconds from an unstake request to the unstake; > challenge_period + dispute_period."""
    admin_delay: int = DEFAULT_ADMIN_DELAY
    """Delay of a two-step admin transfer."""
    min_provider_stake: int = DEFAULT_MIN_PROVIDER_STAKE
    """Stake a provider payee must hold to be paid (wei)."""
    dispute_bond: int = DEFAULT_DISPUTE_BOND
    """Bond to open a dispute (wei, > 0)."""
    max_slash_bps: int = DEFAULT_MAX_SLASH_BPS
    """Most of a provider's stake one upheld dispute slashes (0..10000)."""
    sla_bps: int = DEFAULT_SLA_BPS
    """Availability per epoch a provider promises (0..10000 basis points)."""
    downtime_slash_bps: int = DEFAULT_DOWNTIME_SLASH_BPS
    """Share of its stake a provider loses for an epoch below the SLA (0..max_slash_bps)."""
    feed_stale_after: int = DEFAULT_FEED_STALE_AFTER
    """Seconds after its update an availability round can still slash (1..MAX_PERIOD)."""

    def check(self) -> None:
        """The constructor's rules, as UsageErrors naming the option (the contract checks them too)."""
        periods = {"challenge period": self.challenge_period, "max batch delay": self.max_batch_delay,
                   "thaw period": self.thaw_period, "withdrawal window": self.withdrawal_window,
                   "dispute period": self.dispute_period, "unstake thaw": self.unstake_thaw,
                   "admin delay": self.admin_delay}
        for name, value in periods.items():
            if not isinstance(value, int) or not 0 <= value <= MAX_PERIOD:
                raise UsageError(f"the {name} must be 0..{MAX_PERIOD} seconds (365 days), not {value!r}")
        for name in ("challenge period", "withdrawal window", "dispute period"):
            if periods[name] == 0:
                raise UsageError(f"the {name} must be at least 1 second")
        if self.thaw_period <= self.challenge_period + self.max_batch_delay:
            raise UsageError(
                f"the thaw period ({self.thaw_period} s) must be longer than the challenge period plus the max "
                f"batch delay ({self.challenge_period} + {self.max_batch_delay} s), so that usage committed "
                f"late is claimable before a withdrawal requested meanwhile")
        if self.unstake_thaw <= self.challenge_period + self.dispute_period:
            raise UsageError(
                f"the unstake thaw ({self.unstake_thaw} s) must be longer than the challenge period plus the "
                f"dispute period ({self.challenge_period} + {self.dispute_period} s), so that a stake stays "
                f"slashable while its disputes can be resolved")
        if not 0 <= self.min_provider_stake < 2**128:
            raise UsageError(f"the minimum provider stake must be 0..2^128-1 wei, not {self.min_provider_stake}")
        if not 0 < self.dispute_bond < 2**128:
            raise UsageError(f"the dispute bond must be 1..2^128-1 wei, not {self.dispute_bond}")
        if not 0 <= self.max_slash_bps <= 10_000:
            raise UsageError(f"the max slash must be 0..10000 basis points, not {self.max_slash_bps}")
        if not 0 <= self.sla_bps <= 10_000:
            raise UsageError(f"the SLA must be 0..10000 basis points of availability, not {self.sla_bps}")
        if not 0 <= self.downtime_slash_bps <= self.max_slash_bps:
            raise UsageError(f"the downtime slash must be 0..{self.max_slash_bps} basis points (the max slash), "
                             f"not {self.downtime_slash_bps}")
        if not 0 < self.feed_stale_after <= MAX_PERIOD:
            raise UsageError(f"the feed staleness must be 1..{MAX_PERIOD} seconds, not {self.feed_stale_after}")
        checksum(self.treasury, "treasury")


def deploy(sender: Sender, *, token: str | None = None, test_token: bool = False,
           config: RegistryConfig | None = None,
           challenge_period: int | None = None, thaw_period: int | None = None,
           admin: str | None = None, committer: str | None = None, governance: str | None = None,
           rpc_url: str | None = None) -> Deployment:
    """Deploy a SettlementRegistry (and its CounterNFT) on `token`, or on a fresh TestToken when
    `test_token`.

    `config` holds the constructor's periods, stakes and treasury (defaults: RegistryConfig());
    `challenge_period` and `thaw_period`, when given, override its fields (without a `config`, the
    max batch delay then shrinks to what the thaw leaves room for). Roles default to the
    sender. The parameters are checked here first for clear messages; the constructor checks them too.
    """
    if (token is None) == (not test_token):
        raise UsageError("pass either --token ADDR (the ERC-20 deposits are made in) or --test-token")
    if test_token and sender.chain_id not in DEV_CHAIN_IDS:
        raise UsageError(f"--test-token mints freely and is for development chains only "
                         f"({sorted(DEV_CHAIN_IDS)}), not chain {sender.chain_id}; pass --token ADDR")
    overrides = {k: v for k, v in (("challenge_period", challenge_period), ("thaw_period", thaw_period))
                 if v is not None}
    if config is None and overrides:
        # Only the round-one periods given: the committer's promised delay is the default, or
        # what the thaw leaves room for when that is shorter (thaw > challenge + delay).
        room = overrides.get("thaw_period", DEFAULT_THAW_PERIOD) - overrides.get("challenge_period",
                                                                                 DEFAULT_CHALLENGE_PERIOD) - 1
        overrides["max_batch_delay"] = max(0, min(DEFAULT_MAX_BATCH_DELAY, room))
    config = replace(config or RegistryConfig(), **overrides)
    config.check()
    roles = {name: checksum(value, f"--{name}") if value else sender.address
             for name, value in (("admin", admin), ("committer", committer), ("governance", governance))}
    w3 = sender.w3
    transactions = {}
    if test_token:
        result = sender.send(contract(w3, TEST_TOKEN).constructor(), "deploy TestToken")
        token = result.receipt["contractAddress"]
        transactions["token"] = result.tx_hash
    token = checksum(token, "--token")
    if not w3.eth.get_code(token):
        raise UsageError(f"--token {token} has no contract code on chain {sender.chain_id}; "
                         f"pass the address of a deployed ERC-20")
    treasury = checksum(config.treasury, "treasury")
    arguments = (token, treasury, roles["admin"], roles["committer"], roles["governance"], config.admin_delay,
                 config.challenge_period, config.max_batch_delay, config.thaw_period, config.withdrawal_window,
                 config.dispute_period, config.unstake_thaw, config.min_provider_stake, config.dispute_bond,
                 config.max_slash_bps, config.sla_bps, config.downtime_slash_bps, config.feed_stale_after)
    result = sender.send(contract(w3, REGISTRY).constructor(arguments), "deploy SettlementRegistry")
    transactions["registry"] = result.tx_hash
    registry = result.receipt["contractAddress"]
    counter_nft = contract(w3, REGISTRY, registry).functions.counterNFT().call()
    artifact = load_artifact(REGISTRY)
    return Deployment(
        chain_id=sender.chain_id, registry=registry, token=token,
        test_token=test_token, block=result.block, challenge_period=config.challenge_period,
        thaw_period=config.thaw_period, counter_nft=to_checksum_address(counter_nft), treasury=treasury,
        max_batch_delay=config.max_batch_delay, withdrawal_window=config.withdrawal_window,
        dispute_period=config.dispute_period, unstake_thaw=config.unstake_thaw,
        admin_delay=config.admin_delay, min_provider_stake=config.min_provider_stake,
        dispute_bond=config.dispute_bond, max_slash_bps=config.max_slash_bps,
        sla_bps=config.sla_bps, downtime_slash_bps=config.downtime_slash_bps,
        feed_stale_after=config.feed_stale_after,
        registry_version=REGISTRY_VERSION, rpc_url=rpc_url if is_public_url(rpc_url) else None,
        transactions=transactions,
        compiler=artifact.compiler, artifact_input_hash=artifact.input_hash, **roles)


@dataclass(frozen=True)
class Difference:
    """One way the deployment file and the chain disagree."""

    field: str
    """The deployment field (or "code", "batch N")."""
    in_file: object
    """What the file says."""
    on_chain: object
    """What the chain says."""

    def __str__(self) -> str:
        return f"{self.field}: the file says {self.in_file}, the chain says {self.on_chain}"


_PARAMETER_VIEWS = {
    "token": "token", "challenge_period": "challengePeriod", "thaw_period": "thawPeriod",
    "counter_nft": "counterNFT", "treasury": "treasury", "max_batch_delay": "maxBatchDelay",
    "withdrawal_window": "withdrawalWindow", "dispute_period": "disputePeriod", "unstake_thaw": "unstakeThaw",
    "admin_delay": "defaultAdminDelay", "min_provider_stake": "minProviderStake", "dispute_bond": "disputeBond",
    "max_slash_bps": "maxSlashBps", "sla_bps": "slaBps", "downtime_slash_bps": "downtimeSlashBps",
    "feed_stale_after": "feedStaleAfter",
}
"""Deployment field -> the registry's view of it (those the deployed ABI has are compared)."""

SEVERE_FIELDS = ("chain_id", "code", "token", "challenge_period", "thaw_period", "counter_nft", "treasury",
                 "max_batch_delay", "withdrawal_window", "dispute_period", "unstake_thaw", "min_provider_stake",
                 "dispute_bond", "max_slash_bps")
"""Differences after which the file cannot be used: it describes another contract."""


def compare_with_chain(w3: Web3, deployment: Deployment, local_roots: dict[int, bytes] | None = None
                       ) -> tuple[Deployment, list[Difference]]:
    """The deployment as the chain has it, and every difference from the file.

    Checked: chain id, code at the registry, token, challenge and thaw periods, role holders,
    and (given `local_roots`, batch -> root of an output folder) each batch's root on chain.
    """
    differences = []
    chain_id = w3.eth.chain_id
    if chain_id != deployment.chain_id:
        return deployment, [Difference("chain_id", deployment.chain_id, chain_id)]
    if not w3.eth.get_code(deployment.registry):
        return deployment, [Difference("code", f"a registry at {deployment.registry}", "no contract code")]
    registry = contract(w3, REGISTRY, deployment.registry)
    views = registry.functions
    present = {entry["name"] for entry in registry.abi if entry["type"] == "function"}
    actual = {name: getattr(views, view)().call() for name, view in _PARAMETER_VIEWS.items()
              if view in present and hasattr(deployment, name)}
    for name, value in actual.items():
        if getattr(deployment, name) != value:
            differences.append(Difference(name, getattr(deployment, name), value))
    roles = {"admin": views.DEFAULT_ADMIN_ROLE().call(), "committer": views.COMMITTER_ROLE().call(),
             "governance": views.GOVERNANCE_ROLE().call()}
    for name, role in roles.items():
        holder = getattr(deployment, name)
        if not views.hasRole(role, holder).call():
            differences.append(Difference(name, holder, f"{holder} does not hold the role"))
    for number, root in sorted((local_roots or {}).items()):
        info = views.batchInfo(number).call()
        on_chain, committed_at = bytes(info[0]), info[4]  # a zero root is an empty batch's
        if committed_at == 0 or on_chain != root:
            state = "not committed" if committed_at == 0 else f"root 0x{on_chain.hex()}"
            differences.append(Difference(f"batch {number}", f"root 0x{root.hex()}", state))
    fixed = {k: v for k, v in actual.items() if k in Deployment.__dataclass_fields__}
    return replace(deployment, **fixed), differences
