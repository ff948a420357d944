"""Settling an output folder on a local anvil chain, start to finish (what `meterroot demo` shows).

    chain = start_local_chain(out)                       # anvil under OUT/chain/
    deployment = deploy_local(chain.url, deployment_file=out / "chain" / "deployment.json")
    ... meterroot batch --chain-id deployment.chain_id --registry deployment.registry ...
    result = settle_one_leaf(out, deployment, skip_validation=...)
    result.balance_before, result.balance_after          # the payee's tokens around the claim
    stop_local_chain(out)

Transactions are signed with anvil's first development key; the registry gets a mintable test
token and a one-minute challenge period, which `settle_one_leaf` skips with evm_increaseTime.
The consumer's SpendPermit is signed with its own key (`consumer_key`): no key but the
consumer's can let a payee collect from its deposit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from sinks.chain import anvil
from sinks.chain.batch_files import CONSUMER, PAYEE, LeafProof, batch_numbers, find_leaf, load_tree, read_batch
from sinks.chain.deployment import Deployment, deploy
from sinks.chain.keys import anvil_dev_account, resolve_account
from sinks.chain.registry import ClaimResult, Registry, advance_time
from sinks.chain.rpc import Sender, connect
from sinks.chain.settle import CommitOutcome, commit_output
from sinks.chain.spend_permits import sign_permit

DEMO_CHALLENGE_PERIOD = 60
"""Seconds: short, since the demo skips it on the local chain's clock."""
DEMO_THAW_PERIOD = 120
"""Seconds; longer than the challenge period, as the registry requires."""


@dataclass(frozen=True)
class LocalSettlement:
    """What `settle_one_leaf` did."""

    commits: list[CommitOutcome]
    """One outcome per batch of OUT (committed now, or already on chain)."""
    batch: int
    """Batch the claimed leaf comes from."""
    consumer: str
    """Consumer whose deposit paid."""
    payee: str
    """Payee that was paid."""
    cumulative: int
    """The leaf's cumulative amount owed, in wei."""
    deposited: int
    """Test tokens minted and deposited for the consumer to cover the claim."""
    claim: ClaimResult
    """The claim transaction's outcome."""
    balance_before: int
    """The payee's token balance before the claim."""
    balance_after: int
    """The payee's token balance after the claim."""


def start_local_chain(out: Path, *, port: int = 0) -> anvil.LocalChain:
    """Start anvil for OUT (state in OUT/chain/anvil-state.json); port 0 picks a free port."""
    return anvil.start(Path(out), port=port)


def stop_local_chain(out: Path) -> anvil.LocalChain | None:
    """Stop OUT's anvil; its state is saved for the next start."""
    return anvil.stop(Path(out))


def deploy_local(rpc_url: str, *, challenge_period: int = DEMO_CHALLENGE_PERIOD,
                 thaw_period: int = DEMO_THAW_PERIOD, deployment_file: Path | None = None) -> Deployment:
    """Deploy a TestToken and a SettlementRegistry with the dev key; write `deployment_file` if given."""
    w3 = connect(rpc_url)
    sender = Sender(w3, anvil_dev_account())
    deployment = deploy(sender, test_token=True, challenge_period=challenge_period,
                        thaw_period=thaw_period, rpc_url=rpc_url)
    if deployment_file is not None:
        deployment.write(Path(deployment_file))
    return deployment


def connect_registry(deployment: Deployment, *, rpc_url: str | None = None, private_key: str | None = None,
                     confirmations: int = 1) -> Registry:
    """A Registry handle that can send, signed with `private_key` (the dev key on anvil)."""
    w3 = connect(rpc_url or deployment.rpc_url, expected_chain_id=deployment.chain_id)
    sender = Sender(w3, resolve_account(private_key, deployment.chain_id), confirmations=confirmations)
    return Registry(w3, deployment, sender).require_code()


def settle_one_leaf(out: Path, deployment: Deployment, *, batch: int | None = None,
                    consumer: str | None = None, payee: str | None = None,
                    consumer_key: LocalAccount | None = None,
                    skip_validation: bool = False) -> LocalSettlement:
    """Commit OUT's batches, fund one leaf's consumer, stake its payee, skip the challenge
    period, claim the leaf.

    The leaf is (consumer, payee) of `batch` (default: the last batch), or that batch's first
    leaf when they are not given. `consumer_key` signs the consumer's SpendPermit for the leaf's
    amount (claimed with claimWithPermit); without it the consumer's permit must be on chain
    already, or the claim pays nothing. Needs a --test-token deployment on a development chain.
    """
    out = Path(out)
    registry = connect_registry(deployment)
    commits = commit_output(out, registry, skip_validation=skip_validation)
    number = batch if batch is not None else batch_numbers(out)[-1]
    proof = _chosen_leaf(out, number, consumer, payee)

    owed = proof.cumulative - registry.collected(proof.consumer, proof.payee)
    deposited = max(owed - registry.deposit_of(proof.consumer), 0)
    if deposited:
        registry.deposit_for(proof.consumer, deposited, mint=True)
    _stake_payee(registry, proof.payee)

    claimable_at = registry.batch(number).claimable_at
    now = registry.block_timestamp()
    if now < claimable_at:
        advance_time(registry.w3, claimable_at - now)

    before = registry.token_balance(proof.payee)
    if consumer_key is not None:
        permit = sign_permit(consumer_key, deployment.chain_id, deployment.registry, proof.consumer,
                             proof.payee, proof.cumulative)
        claim = registry.claim_with_permit(number, proof.consumer, proof.payee, proof.cumulative, proof.proof,
                                           permit)
    else:
        claim = registry.claim(number, proof.consumer, proof.payee, proof.cumulative, proof.proof)
    after = registry.token_balance(proof.payee)
    return LocalSettlement(commits=commits, batch=number, consumer=proof.consumer, payee=proof.payee,
                           cumulative=proof.cumulative, deposited=deposited, claim=claim,
                           balance_before=before, balance_after=after)


def _stake_payee(registry: Registry, payee: str) -> None:
    """Mint and stake what a provider payee lacks of the minimum stake (the treasury needs none)."""
    if payee == registry.deployment.treasury:
        return
    missing = registry.deployment.min_provider_stake - registry.stakes(payee).bonded
    if missing > 0:
        registry.stake(missing, provider=payee, mint=True)


def _chosen_leaf(out: Path, number: int, consumer: str | None, payee: str | None) -> LeafProof:
    local = read_batch(out, number)
    tree = load_tree(local)
    if consumer is None or payee is None:
        first = tree.values[0]
        consumer, payee = first[CONSUMER], first[PAYEE]
    return find_leaf(local, tree, consumer, payee)
