"""Settling an output folder on a local anvil chain, start to finish (what `meterroot demo` shows).

    chain = start_local_chain(out)                       # anvil under OUT/chain/
    deployment = deploy_local(chain.url, treasury=..., deployment_file=out / "chain" / "deployment.json")
    ... meterroot batch --chain-id deployment.chain_id --registry deployment.registry ...
    result = settle_with_permits(out, deployment, {consumer: key, ...})
    result.claims, result.balances                       # what each payee was paid
    stop_local_chain(out)

Transactions are signed with anvil's first development key (deployer, admin, committer and
governance: one key is allowed on 31337 only); each consumer signs its own spend permits with its
key, exactly as the consumer SDK does. The registry gets a mintable test token and one-minute
periods, which the demo skips with evm_increaseTime.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from settlement.permits import sign_permit
from sinks.chain import anvil
from sinks.chain.batch_files import CONSUMER, CUMULATIVE, PAYEE, batch_numbers, load_tree, read_batch
from sinks.chain.deployment import DEFAULT_TREASURY, Deployment, RegistryConfig, deploy
from sinks.chain.keys import anvil_dev_account, resolve_account
from sinks.chain.permit_claims import PermitClaim, claim_with_permits
from sinks.chain.registry import Registry, advance_time
from sinks.chain.rpc import Sender, connect
from sinks.chain.settle import CommitOutcome, commit_output
from sinks.permit_files import write_permit_file
from sinks.permits import IngestReport, ingest

DEMO_CHALLENGE_PERIOD = 60
"""Seconds: short, since the demo skips it on the local chain's clock."""
DEMO_MAX_BATCH_DELAY = 60
"""Seconds the demo's committer promises to take at most."""
DEMO_THAW_PERIOD = 180
"""Seconds; longer than the challenge period plus the max batch delay, as the registry requires."""
DEMO_CONFIG = dict(challenge_period=DEMO_CHALLENGE_PERIOD, max_batch_delay=DEMO_MAX_BATCH_DELAY,
                   thaw_period=DEMO_THAW_PERIOD, withdrawal_window=600, dispute_period=60, unstake_thaw=180,
                   admin_delay=60)


@dataclass(frozen=True)
class LocalSettlement:
    """What `settle_with_permits` did."""

    commits: list[CommitOutcome]
    """One outcome per batch of OUT (committed now, or already on chain)."""
    batch: int
    """Batch the claimed leaves come from."""
    permit_file: Path
    """The permits the consumers signed (one per payee they owe), as the SDK writes them."""
    ingested: IngestReport
    """`meterroot permits --ingest` of that file: verified and kept in OUT/permits/."""
    deposited: dict
    """{consumer: test tokens minted and deposited to cover what it owes}."""
    staked: dict
    """{provider: test tokens staked for it (the registry's minimum)}."""
    claims: list[PermitClaim] = field(default_factory=list)
    """One claim per leaf of the signing consumers."""
    balances: dict = field(default_factory=dict)
    """{payee: (token balance before the claims, after)}."""


def start_local_chain(out: Path, *, port: int = 0) -> anvil.LocalChain:
    """Start anvil for OUT (state in OUT/chain/anvil-state.json); port 0 picks a free port."""
    return anvil.start(Path(out), port=port)


def stop_local_chain(out: Path) -> anvil.LocalChain | None:
    """Stop OUT's anvil; its state is saved for the next start."""
    return anvil.stop(Path(out))


def deploy_local(rpc_url: str, *, treasury: str = DEFAULT_TREASURY, deployment_file: Path | None = None,
                 **periods) -> Deployment:
    """Deploy a TestToken and a SettlementRegistry with the dev key (every role: chain 31337 only)
    and the demo's short periods (`periods` overrides them); write `deployment_file` if given."""
    w3 = connect(rpc_url)
    sender = Sender(w3, anvil_dev_account())
    config = RegistryConfig(treasury=treasury, **(DEMO_CONFIG | periods))
    deployment = deploy(sender, test_token=True, config=config, rpc_url=rpc_url)
    if deployment_file is not None:
        deployment.write(Path(deployment_file))
    return deployment


def connect_registry(deployment: Deployment, *, rpc_url: str | None = None, private_key: str | None = None,
                     confirmations: int = 1) -> Registry:
    """A Registry handle that can send, signed with `private_key` (the dev key on anvil)."""
    w3 = connect(rpc_url or deployment.rpc_url, expected_chain_id=deployment.chain_id)
    sender = Sender(w3, resolve_account(private_key, deployment.chain_id), confirmations=confirmations)
    return Registry(w3, deployment, sender).require_code()


def settle_with_permits(out: Path, deployment: Deployment, keys: dict, *, batch: int | None = None,
                        skip_validation: bool = False) -> LocalSettlement:
    """Commit OUT's batches; the consumers of `keys` ({address: private key}) sign a permit for
    each payee they owe in `batch` (default: the last), which OUT ingests; fund their deposits,
    stake the providers they pay, skip the challenge period and claim every one of their leaves
    with the stored permits. Needs a --test-token deployment on a development chain."""
    out = Path(out)
    registry = connect_registry(deployment)
    commits = commit_output(out, registry, skip_validation=skip_validation)
    number = batch if batch is not None else batch_numbers(out)[-1]
    leaves = [v for v in load_tree(read_batch(out, number)).values if v[CONSUMER] in keys]

    permits = [sign_permit(keys[v[CONSUMER]], deployment.chain_id, deployment.registry, v[CONSUMER], v[PAYEE],
                           int(v[CUMULATIVE])) for v in leaves]
    permit_file = out / "input" / "permits.jsonl"
    write_permit_file(permit_file, permits)
    ingested = ingest(out, [permit_file])

    deposited = _fund_consumers(registry, leaves)
    staked = _stake_providers(registry, {v[PAYEE] for v in leaves} - {deployment.treasury})
    claimable_at = registry.batch(number).claimable_at
    now = registry.block_timestamp()
    if now < claimable_at:
        advance_time(registry.w3, claimable_at - now)

    payees = sorted({v[PAYEE] for v in leaves}, key=str.lower)
    before = {payee: registry.token_balance(payee) for payee in payees}
    claims = [claim_with_permits(out, registry, number, v[CONSUMER], v[PAYEE]) for v in leaves]
    balances = {payee: (before[payee], registry.token_balance(payee)) for payee in payees}
    return LocalSettlement(commits=commits, batch=number, permit_file=permit_file, ingested=ingested,
                           deposited=deposited, staked=staked, claims=claims, balances=balances)


def _fund_consumers(registry: Registry, leaves) -> dict:
    owed: dict[str, int] = {}
    for value in leaves:
        left = int(value[CUMULATIVE]) - registry.collected(value[CONSUMER], value[PAYEE])
        owed[value[CONSUMER]] = owed.get(value[CONSUMER], 0) + max(left, 0)
    deposited = {}
    for consumer, amount in owed.items():
        missing = amount - registry.available(consumer)
        if missing > 0:
            registry.deposit_for(consumer, missing, mint=True)
            deposited[consumer] = missing
    return deposited


def _stake_providers(registry: Registry, providers) -> dict:
    minimum = registry.deployment.min_provider_stake
    staked = {}
    for provider in sorted(providers, key=str.lower):
        missing = minimum - registry.stakes(provider).bonded
        if missing > 0:
            registry.stake(missing, provider=provider, mint=True)
            staked[provider] = missing
    return staked
