"""SettlementRegistry on a real anvil node: roles, batch order, revocation, claims, deposits."""
from __future__ import annotations

import pytest
from web3.logs import DISCARD

from settlement.errors import ChainError
from sinks.chain.artifacts import REGISTRY
from sinks.chain.deployment import contract
from sinks.chain.registry import advance_time
from tests.chain.conftest import CHALLENGE_PERIOD, THAW_PERIOD
from tests.chain.helpers import address, claim, commit_tree, finalize, leaf, settlement_tree

ROOT = b"\x11" * 32
MANIFEST = b"\x22" * 32


def events(registry, tx, name):
    """Decoded args of the `name` events in a TxResult's (or a plain) receipt."""
    receipt = getattr(tx, "receipt", tx)
    return [dict(e["args"]) for e in getattr(registry.contract.events, name)().process_receipt(receipt, errors=DISCARD)]


def fund(registry, consumer, amount):
    registry.deposit_for(consumer, amount, mint=True)


# ------------------------------------------------------------------------------ construction
def test_constructor_requires_a_thaw_longer_than_the_challenge_period(dev, deployment):
    constructor = contract(dev.w3, REGISTRY).constructor(
        deployment.token, 100, 100, dev.address, dev.address, dev.address)
    with pytest.raises(ChainError, match=r"ThawNotLongerThanChallenge\(thawPeriod=100, challengePeriod=100\)"):
        dev.send(constructor, "deploy")


# ----------------------------------------------------------------------------------- commits
def test_only_the_committer_can_commit(registry, as_account, new_account):
    stranger = as_account(new_account())
    with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
        stranger.commit_batch(1, ROOT, 10, 1, MANIFEST)
    assert registry.latest_batch() == 0


def test_commit_stores_the_batch_and_emits_it(registry):
    result = registry.commit_batch(1, ROOT, 12345, 7, MANIFEST)
    stored = registry.batch(1)
    block_time = registry.w3.eth.get_block(result.block)["timestamp"]
    assert (stored.root, stored.total, stored.leaf_count, stored.manifest_hash) == (ROOT, 12345, 7, MANIFEST)
    assert stored.committed_at == block_time and not stored.revoked
    assert registry.contract.functions.claimableAt(1).call() == block_time + CHALLENGE_PERIOD
    assert events(registry, result, "BatchCommitted") == [
        {"batch": 1, "root": ROOT, "total": 12345, "leafCount": 7, "manifestHash": MANIFEST}]


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


def test_a_zero_root_or_an_oversized_total_is_refused(registry):
    with pytest.raises(ChainError, match=r"EmptyRoot\(batch=1\)"):
        registry.commit_batch(1, b"\x00" * 32, 1, 1, MANIFEST)
    with pytest.raises(ChainError, match=r"TotalTooLarge\(batch=1"):
        registry.commit_batch(1, ROOT, 2**128, 1, MANIFEST)


# -------------------------------------------------------------------------------- revocation
def test_only_governance_revokes(dev, w3, anvil_url, new_account, as_account):
    from sinks.chain.deployment import deploy
    from sinks.chain.registry import Registry
    from sinks.chain.rpc import Sender

    governor = new_account()
    deployment = deploy(dev, test_token=True, challenge_period=CHALLENGE_PERIOD, thaw_period=THAW_PERIOD,
                        governance=governor.address, rpc_url=anvil_url)
    committer = Registry(w3, deployment, dev)
    committer.commit_batch(1, ROOT, 1, 1, MANIFEST)
    with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
        committer.revoke_batch(1)
    Registry(w3, deployment, Sender(w3, governor)).revoke_batch(1)
    assert committer.latest_batch() == 0


def test_governance_revokes_only_the_latest_batch(registry):
    registry.commit_batch(1, ROOT, 1, 1, MANIFEST)
    registry.commit_batch(2, ROOT, 1, 1, MANIFEST)
    with pytest.raises(ChainError, match=r"NotLatestBatch\(batch=1, latest=2\)"):
        registry.revoke_batch(1)
    with pytest.raises(ChainError, match=r"NotLatestBatch\(batch=3, latest=2\)"):
        registry.revoke_batch(3)


def test_a_revoked_batch_cannot_be_claimed_and_can_be_committed_again(registry):
    consumer, payee = address(), address()
    wrong = settlement_tree(registry.deployment.chain_id, registry.deployment.registry, 1, [(consumer, payee, 900)])
    commit_tree(registry, 1, wrong)
    result = registry.revoke_batch(1)
    assert events(registry, result, "BatchRevoked") == [{"batch": 1, "root": wrong.root}]
    assert registry.batch(1).revoked and registry.latest_batch() == 0
    finalize(registry, 1)
    with pytest.raises(ChainError, match=r"RevokedBatch\(batch=1\)"):
        claim(registry, 1, leaf(wrong, consumer, payee))

    right = settlement_tree(registry.deployment.chain_id, registry.deployment.registry, 1, [(consumer, payee, 400)])
    commit_tree(registry, 1, right)
    stored = registry.batch(1)
    assert stored.root == right.root and not stored.revoked and registry.latest_batch() == 1


def test_revocation_ends_with_the_challenge_period(registry):
    registry.commit_batch(1, ROOT, 1, 1, MANIFEST)
    finalize(registry, 1)
    with pytest.raises(ChainError, match=r"ChallengePeriodOver\(batch=1"):
        registry.revoke_batch(1)


# ------------------------------------------------------------------------------------ claims
@pytest.fixture
def parties():
    return address(), address()


def test_claim_before_the_challenge_period_ends_reverts(registry, parties):
    consumer, payee = parties
    tree = settlement_tree(registry.deployment.chain_id, registry.deployment.registry, 1, [(consumer, payee, 50)])
    commit_tree(registry, 1, tree)
    fund(registry, consumer, 50)
    with pytest.raises(ChainError, match=r"ChallengePeriodActive\(batch=1, claimableAt="):
        claim(registry, 1, leaf(tree, consumer, payee))


def test_claim_of_an_uncommitted_batch_reverts(registry, parties):
    consumer, payee = parties
    tree = settlement_tree(registry.deployment.chain_id, registry.deployment.registry, 1, [(consumer, payee, 50)])
    with pytest.raises(ChainError, match=r"BatchNotCommitted\(batch=1\)"):
        claim(registry, 1, leaf(tree, consumer, payee))


def test_claim_pays_the_delta_of_cumulative_amounts_across_batches(registry, parties, as_account, new_account):
    consumer, payee = parties
    other = address()
    d = registry.deployment
    first = settlement_tree(d.chain_id, d.registry, 1, [(consumer, payee, 100), (consumer, other, 7)])
    second = settlement_tree(d.chain_id, d.registry, 2, [(consumer, payee, 250)])
    commit_tree(registry, 1, first)
    commit_tree(registry, 2, second)
    fund(registry, consumer, 1_000)
    finalize(registry, 2)

    anyone = as_account(new_account())  # claims are open to every caller; the payee is paid
    paid_first = claim(anyone, 1, leaf(first, consumer, payee))
    paid_second = claim(anyone, 2, leaf(second, consumer, payee))

    assert (paid_first.paid, paid_second.paid) == (100, 150)
    assert registry.token_balance(payee) == 250
    assert registry.collected(consumer, payee) == 250
    assert registry.deposit_of(consumer) == 750
    assert claim(registry, 1, leaf(first, consumer, payee)).paid == 0  # an older batch pays nothing more


def test_second_claim_pays_nothing(registry, parties):
    consumer, payee = parties
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(consumer, payee, 300)])
    commit_tree(registry, 1, tree)
    fund(registry, consumer, 1_000)
    finalize(registry, 1)
    first = claim(registry, 1, leaf(tree, consumer, payee))
    second = claim(registry, 1, leaf(tree, consumer, payee))
    assert (first.paid, second.paid, second.shortfall) == (300, 0, 0)
    assert events(registry, registry.w3.eth.get_transaction_receipt(second.tx_hash), "Claimed") == []
    assert registry.token_balance(payee) == 300 and registry.deposit_of(consumer) == 700


@pytest.mark.parametrize("tamper", ["inflated amount", "wrong proof", "another registry", "another chain id"])
def test_a_claim_that_does_not_match_a_leaf_reverts(registry, parties, tamper):
    consumer, payee = parties
    d = registry.deployment
    chain_id = 1 if tamper == "another chain id" else d.chain_id
    registry_address = address() if tamper == "another registry" else d.registry
    tree = settlement_tree(chain_id, registry_address, 1, [(consumer, payee, 100), (consumer, address(), 5)])
    commit_tree(registry, 1, tree)
    fund(registry, consumer, 1_000)
    finalize(registry, 1)
    item = leaf(tree, consumer, payee)
    if tamper == "inflated amount":
        item.cumulative = 101
    if tamper == "wrong proof":
        item.proof = [b"\x42" * 32]
    with pytest.raises(ChainError, match=r"InvalidProof\(batch=1"):
        claim(registry, 1, item)
    assert registry.deposit_of(consumer) == 1_000


def test_a_shortfall_pays_what_the_deposit_holds_and_the_rest_after_a_new_deposit(registry, parties):
    consumer, payee = parties
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(consumer, payee, 1_000)])
    commit_tree(registry, 1, tree)
    fund(registry, consumer, 600)
    finalize(registry, 1)

    short = claim(registry, 1, leaf(tree, consumer, payee))
    assert (short.paid, short.shortfall, short.collected) == (600, 400, 600)
    assert registry.deposit_of(consumer) == 0
    empty = claim(registry, 1, leaf(tree, consumer, payee))
    assert (empty.paid, empty.shortfall) == (0, 400)

    fund(registry, consumer, 1_000)
    rest = claim(registry, 1, leaf(tree, consumer, payee))
    assert (rest.paid, rest.shortfall, rest.collected) == (400, 0, 1_000)
    assert registry.token_balance(payee) == 1_000 and registry.deposit_of(consumer) == 600


# -------------------------------------------------------------------------- deposits, withdrawals
def test_deposit_and_deposit_for_credit_the_consumer(registry, as_account, new_account):
    consumer_account = new_account()
    consumer = as_account(consumer_account)
    registry.mint(consumer_account.address, 500)
    consumer.sender.send(registry.token.functions.approve(registry.deployment.registry, 500), "approve")
    result = consumer.sender.send(registry.contract.functions.deposit(200), "deposit")
    assert events(registry, result, "Deposited") == [
        {"consumer": consumer_account.address, "from": consumer_account.address, "amount": 200, "balance": 200}]
    result = registry.deposit_for(consumer_account.address, 50, mint=True)
    assert events(registry, result, "Deposited") == [
        {"consumer": consumer_account.address, "from": registry.sender.address, "amount": 50, "balance": 250}]
    assert registry.deposit_of(consumer_account.address) == 250
    assert registry.token_balance(registry.deployment.registry) == 250
    with pytest.raises(ChainError, match=r"ZeroAmount\(\)"):
        consumer.sender.send(registry.contract.functions.deposit(0), "deposit")


def test_withdrawal_before_the_thaw_reverts_and_after_it_pays(registry, as_account, new_account):
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
    assert event == {"consumer": account.address, "amount": 400, "unlockAt": requested_at + THAW_PERIOD}
    advance_time(registry.w3, THAW_PERIOD - 10)
    with pytest.raises(ChainError, match=r"StillThawing"):
        consumer.withdraw()
    advance_time(registry.w3, 10)
    withdrawn = consumer.withdraw()
    assert events(registry, withdrawn, "Withdrawn") == [{"consumer": account.address, "amount": 400, "balance": 600}]
    assert registry.token_balance(account.address) == 400 and registry.deposit_of(account.address) == 600
    assert registry.pending_withdrawal(account.address) == (0, 0)


def test_a_cancelled_withdrawal_cannot_be_withdrawn(registry, as_account, new_account):
    account = new_account()
    consumer = as_account(account)
    registry.deposit_for(account.address, 100, mint=True)
    consumer.request_withdrawal(100)
    cancelled = consumer.sender.send(registry.contract.functions.cancelWithdrawal(), "cancel")
    assert events(registry, cancelled, "WithdrawalCancelled") == [{"consumer": account.address, "amount": 100}]
    advance_time(registry.w3, THAW_PERIOD)
    with pytest.raises(ChainError, match=r"NoWithdrawalRequested"):
        consumer.withdraw()


def test_claims_during_the_thaw_reduce_the_withdrawal(registry, as_account, new_account):
    account = new_account()
    consumer = as_account(account)
    payee = address()
    d = registry.deployment
    registry.deposit_for(account.address, 1_000, mint=True)
    tree = settlement_tree(d.chain_id, d.registry, 1, [(account.address, payee, 700)])
    commit_tree(registry, 1, tree)
    consumer.request_withdrawal(1_000)  # thaw > challenge: the pending batch is claimable first
    finalize(registry, 1)
    assert claim(registry, 1, leaf(tree, account.address, payee)).paid == 700
    advance_time(registry.w3, THAW_PERIOD)
    withdrawn = consumer.withdraw()
    assert events(registry, withdrawn, "Withdrawn") == [{"consumer": account.address, "amount": 300, "balance": 0}]


def test_claim_emits_claimed_and_shortfall(registry, parties):
    consumer, payee = parties
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(consumer, payee, 80)])
    commit_tree(registry, 1, tree)
    fund(registry, consumer, 30)
    finalize(registry, 1)
    item = leaf(tree, consumer, payee)
    result = registry.sender.send(
        registry.contract.functions.claim(1, consumer, payee, 80, item.proof), "claim")
    assert events(registry, result, "Claimed") == [
        {"batch": 1, "consumer": consumer, "payee": payee, "amount": 30, "collected": 30}]
    assert events(registry, result, "Shortfall") == [
        {"batch": 1, "consumer": consumer, "payee": payee, "unpaid": 50}]
