"""SettlementRegistry v2 on a real anvil node: construction, batch order, revocation, claims with
permits, deposits and withdrawals, stakes, events. The attacks live in test_attacks.py."""
from __future__ import annotations

import pytest
from eth_account import Account
from web3.logs import DISCARD

from settlement.errors import ChainError, UsageError
from sinks.chain.artifacts import REGISTRY
from sinks.chain.deployment import RegistryConfig, contract, deploy
from sinks.chain.registry import COMMITTER_ROLE, GOVERNANCE_ROLE, advance_time, reason_hash
from tests.chain.conftest import (
    CHALLENGE_PERIOD,
    DISPUTE_BOND,
    MIN_PROVIDER_STAKE,
    TEST_CONFIG,
    THAW_PERIOD,
    TREASURY,
    UNSTAKE_THAW,
    WITHDRAWAL_WINDOW,
)
from tests.chain.helpers import (
    address,
    advance_to,
    claim,
    commit_tree,
    consent,
    finalize,
    leaf,
    permit,
    settlement_tree,
    stake_provider,
)

ROOT = b"\x11" * 32
MANIFEST = b"\x22" * 32


def events(registry, tx, name):
    """Decoded args of the `name` events in a TxResult's (or a plain) receipt."""
    receipt = getattr(tx, "receipt", tx)
    return [dict(e["args"]) for e in getattr(registry.contract.events, name)().process_receipt(receipt, errors=DISCARD)]


def fund(registry, consumer, amount):
    registry.deposit_for(consumer, amount, mint=True)


def constructor(dev, token, **changes):
    c = RegistryConfig(**{**TEST_CONFIG.__dict__, **changes})
    return contract(dev.w3, REGISTRY).constructor((
        token, c.treasury, dev.address, dev.address, dev.address, c.admin_delay, c.challenge_period,
        c.max_batch_delay, c.thaw_period, c.withdrawal_window, c.dispute_period, c.unstake_thaw,
        c.min_provider_stake, c.dispute_bond, c.max_slash_bps, c.sla_bps, c.downtime_slash_bps,
        c.feed_stale_after))


# ------------------------------------------------------------------------------ construction
@pytest.mark.parametrize("changes, error", [
    ({"challenge_period": 0}, r"ZeroChallengePeriod\(\)"),
    ({"thaw_period": 150}, r"ThawTooShort\(thawPeriod=150, challengePeriod=100, maxBatchDelay=50\)"),
    ({"thaw_period": 2**63}, r"ParameterOutOfRange\(parameter=thawPeriod, value=9223372036854775808"),
    ({"unstake_thaw": 200}, r"UnstakeThawTooShort\(unstakeThaw=200, challengePeriod=100, disputePeriod=100\)"),
    ({"withdrawal_window": 0}, r"ParameterOutOfRange\(parameter=withdrawalWindow, value=0"),
    ({"dispute_bond": 0}, r"ParameterOutOfRange\(parameter=disputeBond, value=0"),
    ({"max_slash_bps": 10_001}, r"ParameterOutOfRange\(parameter=maxSlashBps, value=10001"),
    ({"sla_bps": 10_001}, r"ParameterOutOfRange\(parameter=slaBps, value=10001"),
    ({"downtime_slash_bps": 9_000, "max_slash_bps": 5_000},
     r"ParameterOutOfRange\(parameter=downtimeSlashBps, value=9000, limit=5000"),
    ({"feed_stale_after": 0}, r"ParameterOutOfRange\(parameter=feedStaleAfter, value=0"),
])
def test_constructor_refuses_unsafe_parameters(dev, deployment, changes, error):
    with pytest.raises(ChainError, match=error):
        dev.send(constructor(dev, deployment.token, **changes), "deploy", gas=10_000_000)


@pytest.mark.parametrize("changes, message", [
    ({"challenge_period": 0}, "challenge period must be at least 1 second"),
    ({"thaw_period": 150}, r"thaw period \(150 s\) must be longer than the challenge period plus the max batch"),
    ({"thaw_period": 2**63}, r"thaw period must be 0..31536000 seconds"),
    ({"unstake_thaw": 200}, r"unstake thaw \(200 s\) must be longer"),
])
def test_deploy_explains_unsafe_parameters_before_sending(dev, changes, message):
    with pytest.raises(UsageError, match=message):
        deploy(dev, test_token=True, config=RegistryConfig(**{**TEST_CONFIG.__dict__, **changes}))


def test_deployment_records_the_parameters_and_the_counter_nft(registry, deployment, dev):
    c = registry.contract.functions
    assert c.counterNFT().call() == deployment.counter_nft and registry.w3.eth.get_code(deployment.counter_nft)
    assert (c.treasury().call(), c.challengePeriod().call(), c.thawPeriod().call(),
            c.withdrawalWindow().call(), c.unstakeThaw().call(), c.minProviderStake().call(),
            c.disputeBond().call()) == (
        TREASURY, CHALLENGE_PERIOD, THAW_PERIOD, WITHDRAWAL_WINDOW, UNSTAKE_THAW, MIN_PROVIDER_STAKE, DISPUTE_BOND)
    assert registry.default_admin() == dev.address
    assert registry.has_role(COMMITTER_ROLE, dev.address) and registry.has_role(GOVERNANCE_ROLE, dev.address)
    assert tuple(registry.contract.functions.eip712Domain().call()[1:5]) == (
        "meterroot", "2", deployment.chain_id, deployment.registry)


# ----------------------------------------------------------------------------------- commits
def test_only_the_committer_can_commit(registry, as_account, new_account):
    stranger = as_account(new_account())
    with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
        stranger.commit_batch(1, ROOT, 10, 1, MANIFEST)
    assert registry.latest_batch() == 0


def test_commit_stores_the_batch_and_emits_its_manifest_hash_and_data_uri(registry):
    result = registry.commit_batch(1, ROOT, 12345, 7, MANIFEST, "http://127.0.0.1:8080/batches/1")
    stored = registry.batch(1)
    block_time = registry.w3.eth.get_block(result.block)["timestamp"]
    assert (stored.root, stored.total, stored.cumulative_total, stored.leaf_count) == (ROOT, 12345, 12345, 7)
    assert stored.committed_at == block_time and not stored.revoked
    assert registry.contract.functions.claimableAt(1).call() == block_time + CHALLENGE_PERIOD
    assert events(registry, result, "BatchCommitted") == [
        {"batch": 1, "root": ROOT, "total": 12345, "leafCount": 7, "manifestHash": MANIFEST,
         "dataURI": "http://127.0.0.1:8080/batches/1"}]
    event = registry.committed_event(1)
    assert (event.manifest_hash, event.data_uri, event.tx_hash) == (MANIFEST, "http://127.0.0.1:8080/batches/1",
                                                                     result.tx_hash)
    registry.commit_batch(2, ROOT, 5, 1, MANIFEST)
    assert registry.batch(2).cumulative_total == 12350 and registry.totals() == (12350, 0)


def test_batches_are_committed_in_order(registry):
    with pytest.raises(ChainError, match=r"BatchOutOfOrder\(batch=2, expected=1\)"):
        registry.commit_batch(2, ROOT, 1, 1, MANIFEST)
    with pytest.raises(ChainError, match=r"BatchOutOfOrder\(batch=0, expected=1\)"):
        registry.commit_batch(0, ROOT, 1, 1, MANIFEST)
    registry.commit_batch(1, ROOT, 1, 1, MANIFEST)
    with pytest.raises(ChainError, match=r"BatchOutOfOrder\(batch=1, expected=2\)"):
        registry.commit_batch(1, b"\x33" * 32, 1, 1, MANIFEST)
    with pytest.raises(ChainError, match=r"BatchOutOfOrder\(batch=3, expected=2\)"):
        registry.commit_batch(3, ROOT, 1, 1, MANIFEST)
    for number in range(2, 6):
        registry.commit_batch(number, ROOT, 1, 1, MANIFEST)
    assert registry.latest_batch() == 5


def test_a_zero_root_that_owes_anything_or_totals_beyond_128_bits_are_refused(registry):
    with pytest.raises(ChainError, match=r"EmptyRoot\(batch=1\)"):
        registry.commit_batch(1, b"\x00" * 32, 1, 1, MANIFEST)
    with pytest.raises(ChainError, match=r"EmptyRoot\(batch=1\)"):
        registry.commit_batch(1, b"\x00" * 32, 1, 0, MANIFEST)
    with pytest.raises(ChainError, match=r"EmptyRoot\(batch=1\)"):
        registry.commit_batch(1, b"\x00" * 32, 0, 1, MANIFEST)
    with pytest.raises(ChainError, match=r"TotalTooLarge\(batch=1"):
        registry.commit_batch(1, ROOT, 2**128, 1, MANIFEST)
    registry.commit_batch(1, ROOT, 2**128 - 2, 1, MANIFEST)
    with pytest.raises(ChainError, match=r"TotalTooLarge\(batch=2, total=2\)"):  # the sum overflows
        registry.commit_batch(2, ROOT, 2, 1, MANIFEST)


# -------------------------------------------------------------------------------- revocation
def test_only_governance_revokes(dev, w3, anvil_url, new_account):
    from sinks.chain.registry import Registry
    from sinks.chain.rpc import Sender

    governor = new_account()
    deployment = deploy(dev, test_token=True, config=TEST_CONFIG, governance=governor.address, rpc_url=anvil_url)
    committer = Registry(w3, deployment, dev)
    committer.commit_batch(1, ROOT, 1, 1, MANIFEST)
    with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
        committer.revoke_batch(1, "wrong root")
    result = Registry(w3, deployment, Sender(w3, governor)).revoke_batch(1, "wrong root")
    assert events(committer, result, "BatchesRevoked") == [
        {"fromBatch": 1, "toBatch": 1, "reasonHash": reason_hash("wrong root")}]
    assert committer.latest_batch() == 0


def test_a_revoked_batch_cannot_be_claimed_and_can_be_committed_again(registry):
    consumer, payee = Account.create(), address()
    d = registry.deployment
    stake_provider(registry, payee)
    wrong = settlement_tree(d.chain_id, d.registry, 1, [(consumer.address, payee, 900)])
    commit_tree(registry, 1, wrong)
    registry.revoke_batch(1, "double counted")
    assert registry.batch(1).revoked and registry.latest_batch() == 0 and registry.totals() == (0, 0)
    fund(registry, consumer.address, 1_000)
    consent(registry, consumer, payee, 1_000)
    advance_time(registry.w3, CHALLENGE_PERIOD)
    with pytest.raises(ChainError, match=r"BatchNotLive\(batch=1, latestBatch=0\)"):
        claim(registry, 1, leaf(wrong, consumer.address, payee))

    right = settlement_tree(d.chain_id, d.registry, 1, [(consumer.address, payee, 400)])
    commit_tree(registry, 1, right)
    stored = registry.batch(1)
    assert stored.root == right.root and stored.live and registry.latest_batch() == 1
    finalize(registry, 1)
    assert claim(registry, 1, leaf(right, consumer.address, payee)).paid == 400


# ------------------------------------------------------------------------------------ claims
@pytest.fixture
def parties(registry):
    """(consumer account, staked provider address)."""
    payee = address()
    stake_provider(registry, payee)
    return Account.create(), payee


def test_claim_before_the_challenge_period_ends_reverts(registry, parties):
    consumer, payee = parties
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(consumer.address, payee, 50)])
    commit_tree(registry, 1, tree)
    fund(registry, consumer.address, 50)
    consent(registry, consumer, payee, 50)
    with pytest.raises(ChainError, match=r"ChallengePeriodActive\(batch=1, claimableAt="):
        claim(registry, 1, leaf(tree, consumer.address, payee))


def test_claim_of_an_uncommitted_batch_reverts(registry, parties):
    consumer, payee = parties
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(consumer.address, payee, 50)])
    with pytest.raises(ChainError, match=r"BatchNotLive\(batch=1, latestBatch=0\)"):
        claim(registry, 1, leaf(tree, consumer.address, payee))


def test_an_empty_batch_commits_with_the_zero_root_pays_nothing_and_the_next_batch_follows_it(registry, parties):
    consumer, payee = parties
    c = consumer.address
    d = registry.deployment
    registry.commit_batch(1, b"\x00" * 32, 0, 0, MANIFEST)  # a batch of free usage: no tree
    assert (registry.latest_batch(), registry.batch(1).committed, registry.totals()) == (1, True, (0, 0))
    one_leaf = settlement_tree(d.chain_id, d.registry, 1, [(c, payee, 40)])
    second = settlement_tree(d.chain_id, d.registry, 2, [(c, payee, 40)])
    commit_tree(registry, 2, second)
    fund(registry, c, 100)
    consent(registry, consumer, payee, 40)
    finalize(registry, 2)
    with pytest.raises(ChainError, match=r"InvalidProof\(batch=1"):  # no leaf hashes to the zero root
        claim(registry, 1, leaf(one_leaf, c, payee))
    assert claim(registry, 2, leaf(second, c, payee)).paid == 40
    assert registry.totals() == (40, 40)


def test_claim_pays_the_delta_of_cumulative_amounts_across_batches(registry, parties, as_account, new_account):
    consumer, payee = parties
    c = consumer.address
    other = TREASURY  # the treasury needs no stake
    d = registry.deployment
    first = settlement_tree(d.chain_id, d.registry, 1, [(c, payee, 100), (c, other, 7)])
    second = settlement_tree(d.chain_id, d.registry, 2, [(c, payee, 250)])
    commit_tree(registry, 1, first)
    commit_tree(registry, 2, second, total=150)
    fund(registry, c, 1_000)
    consent(registry, consumer, payee, 250)
    finalize(registry, 2)

    anyone = as_account(new_account())  # claims are open to every caller; the payee is paid
    paid_first = claim(anyone, 1, leaf(first, c, payee))
    paid_second = claim(anyone, 2, leaf(second, c, payee))

    assert (paid_first.paid, paid_second.paid) == (100, 150)
    assert registry.token_balance(payee) == 250
    assert registry.collected(c, payee) == 250
    assert registry.deposit_of(c) == 750
    assert claim(registry, 1, leaf(first, c, payee)).paid == 0  # an older batch pays nothing more
    assert registry.totals() == (257, 250)


def test_second_claim_pays_nothing(registry, parties):
    consumer, payee = parties
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(consumer.address, payee, 300)])
    commit_tree(registry, 1, tree)
    fund(registry, consumer.address, 1_000)
    consent(registry, consumer, payee, 300)
    finalize(registry, 1)
    first = claim(registry, 1, leaf(tree, consumer.address, payee))
    second = claim(registry, 1, leaf(tree, consumer.address, payee))
    assert (first.paid, second.paid, second.shortfall) == (300, 0, 0)
    assert events(registry, registry.w3.eth.get_transaction_receipt(second.tx_hash), "Claimed") == []
    assert registry.token_balance(payee) == 300 and registry.deposit_of(consumer.address) == 700


@pytest.mark.parametrize("tamper", ["inflated amount", "wrong proof", "another registry", "another chain id"])
def test_a_claim_that_does_not_match_a_leaf_reverts(registry, parties, tamper):
    consumer, payee = parties
    d = registry.deployment
    chain_id = 1 if tamper == "another chain id" else d.chain_id
    registry_address = address() if tamper == "another registry" else d.registry
    tree = settlement_tree(chain_id, registry_address, 1, [(consumer.address, payee, 100), (consumer.address, address(), 5)])
    commit_tree(registry, 1, tree)
    fund(registry, consumer.address, 1_000)
    consent(registry, consumer, payee, 1_000)
    finalize(registry, 1)
    item = leaf(tree, consumer.address, payee)
    if tamper == "inflated amount":
        item.cumulative = 101
    if tamper == "wrong proof":
        item.proof = [b"\x42" * 32]
    with pytest.raises(ChainError, match=r"InvalidProof\(batch=1"):
        claim(registry, 1, item)
    assert registry.deposit_of(consumer.address) == 1_000


def test_a_shortfall_pays_what_the_deposit_holds_and_the_rest_after_a_new_deposit(registry, parties):
    consumer, payee = parties
    c = consumer.address
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(c, payee, 1_000)])
    commit_tree(registry, 1, tree)
    fund(registry, c, 600)
    consent(registry, consumer, payee, 1_000)
    finalize(registry, 1)

    short = claim(registry, 1, leaf(tree, c, payee))
    assert (short.paid, short.shortfall, short.cause, short.collected) == (600, 400, "deposit", 600)
    assert registry.deposit_of(c) == 0
    # Nothing left to pay: the claim reverts, so no one can emit a Shortfall again for free.
    with pytest.raises(ChainError, match=r"NothingPayable\(batch=1, .*owed=400, cause=2\)"):
        claim(registry, 1, leaf(tree, c, payee))

    fund(registry, c, 1_000)
    rest = claim(registry, 1, leaf(tree, c, payee))
    assert (rest.paid, rest.shortfall, rest.collected) == (400, 0, 1_000)
    assert registry.token_balance(payee) == 1_000 and registry.deposit_of(c) == 600


def test_claim_emits_claimed_and_shortfall_with_its_cause(registry, parties):
    consumer, payee = parties
    c = consumer.address
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(c, payee, 80)])
    commit_tree(registry, 1, tree)
    fund(registry, c, 30)
    submitted = registry.submit_permit(permit(registry, consumer, payee, 80))
    assert events(registry, submitted, "PermitSubmitted") == [
        {"consumer": c, "payee": payee, "cumulativeAmount": 80, "signer": c}]
    finalize(registry, 1)
    item = leaf(tree, c, payee)
    result = registry.sender.send(registry.contract.functions.claim(1, c, payee, 80, item.proof), "claim")
    assert events(registry, result, "Claimed") == [
        {"batch": 1, "consumer": c, "payee": payee, "amount": 30, "collected": 30}]
    assert events(registry, result, "Shortfall") == [
        {"batch": 1, "consumer": c, "payee": payee, "unpaid": 50, "cause": 2}]


# -------------------------------------------------------------------------- deposits, withdrawals
def test_deposit_and_deposit_for_credit_the_consumer(registry, as_account, new_account):
    consumer_account = new_account()
    consumer = as_account(consumer_account)
    registry.mint(consumer_account.address, 500)
    result = consumer.deposit(200)
    assert events(registry, result, "Deposited") == [
        {"consumer": consumer_account.address, "from": consumer_account.address, "amount": 200, "balance": 200}]
    result = registry.deposit_for(consumer_account.address, 50, mint=True)
    assert events(registry, result, "Deposited") == [
        {"consumer": consumer_account.address, "from": registry.sender.address, "amount": 50, "balance": 250}]
    assert registry.deposit_of(consumer_account.address) == 250 == registry.available(consumer_account.address)
    assert registry.token_balance(registry.deployment.registry) == 250
    with pytest.raises(ChainError, match=r"ZeroAmount\(\)"):
        consumer.sender.send(registry.contract.functions.deposit(0), "deposit")


def test_withdrawal_pays_inside_its_window(registry, as_account, new_account):
    account = new_account()
    consumer = as_account(account)
    registry.deposit_for(account.address, 1_000, mint=True)
    with pytest.raises(ChainError, match=r"NoWithdrawalRequested"):
        consumer.withdraw()
    with pytest.raises(ChainError, match=r"InsufficientDeposit\(consumer=.*, balance=1000, amount=1001\)"):
        consumer.request_withdrawal(1_001)

    requested = consumer.request_withdrawal(400)
    [event] = events(registry, requested, "WithdrawalRequested")
    requested_at = registry.w3.eth.get_block(requested.block)["timestamp"]
    unlock_at = requested_at + THAW_PERIOD
    assert event == {"consumer": account.address, "amount": 400, "unlockAt": unlock_at,
                     "lapsesAt": unlock_at + WITHDRAWAL_WINDOW}
    assert registry.available(account.address) == 600 and registry.deposit_of(account.address) == 1_000
    assert registry.withdrawal(account.address).lapses_at == unlock_at + WITHDRAWAL_WINDOW
    advance_time(registry.w3, THAW_PERIOD + WITHDRAWAL_WINDOW // 2)
    withdrawn = consumer.withdraw()
    assert events(registry, withdrawn, "Withdrawn") == [{"consumer": account.address, "amount": 400, "balance": 600}]
    assert registry.token_balance(account.address) == 400 and registry.deposit_of(account.address) == 600
    assert registry.pending_withdrawal(account.address) == (0, 0)


def test_a_cancelled_withdrawal_cannot_be_withdrawn(registry, as_account, new_account):
    account = new_account()
    consumer = as_account(account)
    registry.deposit_for(account.address, 100, mint=True)
    consumer.request_withdrawal(100)
    cancelled = consumer.cancel_withdrawal()
    assert events(registry, cancelled, "WithdrawalCancelled") == [{"consumer": account.address, "amount": 100}]
    advance_time(registry.w3, THAW_PERIOD)
    with pytest.raises(ChainError, match=r"NoWithdrawalRequested"):
        consumer.withdraw()


def test_claims_during_the_thaw_reduce_the_withdrawal(registry, as_account, new_account):
    account = new_account()
    consumer = as_account(account)
    payee = address()
    stake_provider(registry, payee)
    d = registry.deployment
    registry.deposit_for(account.address, 1_000, mint=True)
    consent(registry, account, payee, 700)
    tree = settlement_tree(d.chain_id, d.registry, 1, [(account.address, payee, 700)])
    commit_tree(registry, 1, tree)
    requested = consumer.request_withdrawal(1_000)  # thaw > challenge + max delay: the batch is claimable first
    finalize(registry, 1)
    assert claim(registry, 1, leaf(tree, account.address, payee)).paid == 700
    advance_to(registry, registry.withdrawal(account.address).unlock_at)
    withdrawn = consumer.withdraw()
    assert events(registry, withdrawn, "Withdrawn") == [{"consumer": account.address, "amount": 300, "balance": 0}]


# ------------------------------------------------------------------------------------ stakes
def test_stake_request_unstake_and_unstake_after_the_thaw(registry, as_account, new_account):
    account = new_account()
    provider = as_account(account)
    registry.mint(account.address, 3_000)
    staked = provider.stake(3_000)
    assert events(registry, staked, "Staked") == [
        {"provider": account.address, "from": account.address, "amount": 3_000, "staked": 3_000}]
    with pytest.raises(ChainError, match=r"InsufficientStake\(provider=.*, staked=3000, amount=3001\)"):
        provider.request_unstake(3_001)
    requested = provider.request_unstake(2_500)
    unlock_at = registry.w3.eth.get_block(requested.block)["timestamp"] + UNSTAKE_THAW
    assert events(registry, requested, "UnstakeRequested") == [
        {"provider": account.address, "amount": 2_500, "unlockAt": unlock_at}]
    stake = registry.stakes(account.address)
    assert (stake.staked, stake.unstaking, stake.bonded, stake.unlock_at) == (3_000, 2_500, 500, unlock_at)
    with pytest.raises(ChainError, match=r"StillThawing"):
        provider.unstake()
    advance_time(registry.w3, UNSTAKE_THAW)
    unstaked = provider.unstake()
    assert events(registry, unstaked, "Unstaked") == [{"provider": account.address, "amount": 2_500, "staked": 500}]
    assert registry.token_balance(account.address) == 2_500 and registry.stakes(account.address).staked == 500
    with pytest.raises(ChainError, match=r"NoUnstakeRequested"):
        provider.unstake()


def test_the_treasury_is_paid_without_a_stake(registry):
    consumer = Account.create()
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(consumer.address, TREASURY, 25)])
    commit_tree(registry, 1, tree)
    fund(registry, consumer.address, 25)
    consent(registry, consumer, TREASURY, 25)
    finalize(registry, 1)
    assert registry.stakes(TREASURY).staked == 0
    assert claim(registry, 1, leaf(tree, consumer.address, TREASURY)).paid == 25
    assert registry.token_balance(TREASURY) == 25


def test_signer_authorization_and_revocation_emit_events(registry, as_account, new_account):
    account = new_account()
    consumer = as_account(account)
    signer = address()
    authorized = consumer.authorize_signer(signer)
    assert events(registry, authorized, "SignerAuthorized") == [{"consumer": account.address, "signer": signer}]
    assert registry.is_authorized_signer(account.address, signer)
    revoked = consumer.revoke_signer(signer)
    valid_until = registry.w3.eth.get_block(revoked.block)["timestamp"] + THAW_PERIOD
    assert events(registry, revoked, "SignerRevocationRequested") == [
        {"consumer": account.address, "signer": signer, "validUntil": valid_until}]
    with pytest.raises(ChainError, match=r"SignerNotAuthorized"):
        consumer.revoke_signer(signer)
    with pytest.raises(ChainError, match=r"SignerNotAuthorized"):
        consumer.revoke_signer(address())
