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

DEFAULT_CHALLENGE_PERIOD = 86_400
"""One day during which governance can revoke a committed batch."""
DEFAULT_THAW_PERIOD = 7 * 86_400
"""A week between a withdrawal request and the withdrawal."""


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
            return cls(**data)
        except TypeError as exc:
            raise UsageError(f"deployment file {path} has missing or unknown fields ({exc}); "
                             f"redeploy with `meterroot chain deploy`") from None


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


def deploy(sender: Sender, *, token: str | None = None, test_token: bool = False,
           challenge_period: int = DEFAULT_CHALLENGE_PERIOD, thaw_period: int = DEFAULT_THAW_PERIOD,
           admin: str | None = None, committer: str | None = None, governance: str | None = None,
           rpc_url: str | None = None) -> Deployment:
    """Deploy a SettlementRegistry on `token`, or on a fresh TestToken when `test_token`.

    Roles default to the sender. The thaw must be longer than the challenge period (the
    constructor enforces it too; checked here first for a clear message).
    """
    if (token is None) == (not test_token):
        raise UsageError("pass either --token ADDR (the ERC-20 deposits are made in) or --test-token")
    if test_token and sender.chain_id not in DEV_CHAIN_IDS:
        raise UsageError(f"--test-token mints freely and is for development chains only "
                         f"({sorted(DEV_CHAIN_IDS)}), not chain {sender.chain_id}; pass --token ADDR")
    if challenge_period < 0 or thaw_period <= challenge_period:
        raise UsageError(f"the thaw period ({thaw_period} s) must be longer than the challenge period "
                         f"({challenge_period} s), so a withdrawal never outruns a pending batch")
    if thaw_period >= 2**64:
        raise UsageError(f"the thaw period {thaw_period} s does not fit in uint64")
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
    result = sender.send(
        contract(w3, REGISTRY).constructor(token, challenge_period, thaw_period,
                                           roles["admin"], roles["committer"], roles["governance"]),
        "deploy SettlementRegistry")
    transactions["registry"] = result.tx_hash
    artifact = load_artifact(REGISTRY)
    return Deployment(
        chain_id=sender.chain_id, registry=result.receipt["contractAddress"], token=token,
        test_token=test_token, block=result.block, challenge_period=challenge_period,
        thaw_period=thaw_period, rpc_url=rpc_url if is_public_url(rpc_url) else None, transactions=transactions,
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


SEVERE_FIELDS = ("chain_id", "code", "token", "challenge_period", "thaw_period")
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
    actual = {"token": views.token().call(), "challenge_period": views.challengePeriod().call(),
              "thaw_period": views.thawPeriod().call()}
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
        on_chain = bytes(views.batchInfo(number).call()[0])
        if on_chain != root:
            state = "not committed" if on_chain == bytes(32) else f"root 0x{on_chain.hex()}"
            differences.append(Difference(f"batch {number}", f"root 0x{root.hex()}", state))
    fixed = {k: v for k, v in actual.items() if k in Deployment.__dataclass_fields__}
    return replace(deployment, **fixed), differences
