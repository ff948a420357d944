"""The attack suite: each test tries one way to move money beyond what its owner consented to (or
to escape paying), on a real anvil node against the real contract, and states what is refused."""
from __future__ import annotations

import pytest
from eth_account import Account

from settlement.errors import ChainError
from sinks.chain.artifacts import FEE_TOKEN, TEST_WALLET
from sinks.chain.deployment import contract, deploy
from sinks.chain.registry import DEFAULT_ADMIN_ROLE, GOVERNANCE_ROLE, LIMITS, Registry, advance_time
from sinks.chain.rpc import Sender
from tests.chain.conftest import (
    ADMIN_DELAY,
    CHALLENGE_PERIOD,
    DISPUTE_BOND,
    DISPUTE_PERIOD,
    MAX_BATCH_DELAY,
    MIN_PROVIDER_STAKE,
    TEST_CONFIG,
    THAW_PERIOD,
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

PERMIT, DEPOSIT, COMMITTED_TOTALS = (LIMITS.index(n) for n in ("permit", "deposit", "committed totals"))
EVIDENCE = b"\x0e" * 32


def tree_of(registry, batch, rows):
    d = registry.deployment
    return settlement_tree(d.chain_id, d.registry, batch, rows)


@pytest.fixture
def provider(registry):
    """A provider holding the minimum stake."""
    payee = address()
    stake_provider(registry, payee)
    return payee


@pytest.fixture
def consumer(registry):
    """A consumer account with 1,000 wei deposited."""
    account = Account.create()
    registry.deposit_for(account.address, 1_000, mint=True)
    return account


# ----------------------------------------------------------------------------------- consent
def test_committer_root_paying_a_stranger_pays_nothing_without_a_permit(registry, dev):
    # The deployer holds admin, committer and governance; it commits a root paying itself every
    # consumer's deposit, stakes itself as a provider, waits out the challenge period and claims.
    consumers = [Account.create() for _ in range(3)]
    for c in consumers:
        registry.deposit_for(c.address, 2_000, mint=True)
    stake_provider(registry, dev.address)
    theft = tree_of(registry, 1, [(c.address, dev.address, 2_000) for c in consumers])
    commit_tree(registry, 1, theft)
    finalize(registry, 1)
    before = registry.token_balance(dev.address)
    for c in consumers:
        with pytest.raises(ChainError, match=rf"NothingPayable\(batch=1, .*owed=2000, cause={PERMIT}\)"):
            claim(registry, 1, leaf(theft, c.address, dev.address))
        assert registry.deposit_of(c.address) == 2_000 and registry.permitted(c.address, dev.address) == 0
    assert registry.token_balance(dev.address) == before


def test_a_permit_below_the_leaf_pays_the_permit_and_the_rest_after_a_higher_permit(registry, consumer, provider):
    tree = tree_of(registry, 1, [(consumer.address, provider, 800)])
    commit_tree(registry, 1, tree)
    consent(registry, consumer, provider, 500)
    finalize(registry, 1)
    first = claim(registry, 1, leaf(tree, consumer.address, provider))
    assert (first.paid, first.shortfall, first.cause) == (500, 300, "permit")
    with pytest.raises(ChainError, match=rf"NothingPayable\(batch=1, .*owed=300, cause={PERMIT}\)"):
        claim(registry, 1, leaf(tree, consumer.address, provider))
    consent(registry, consumer, provider, 800)
    rest = claim(registry, 1, leaf(tree, consumer.address, provider))
    assert (rest.paid, rest.shortfall, rest.collected) == (300, 0, 800)
    assert registry.token_balance(provider) == 800 and registry.deposit_of(consumer.address) == 200


def test_a_permit_signed_by_someone_else_changes_nothing(registry, consumer, provider):
    forged = permit(registry, Account.create(), provider, 1_000, consumer=consumer.address)
    with pytest.raises(ChainError, match=r"InvalidPermitSignature\(consumer=.*, cumulativeAmount=1000\)"):
        registry.submit_permit(forged)
    # the payee signing its own permit is "someone else" too
    tree = tree_of(registry, 1, [(consumer.address, provider, 1_000)])
    commit_tree(registry, 1, tree)
    finalize(registry, 1)
    item = leaf(tree, consumer.address, provider)
    with pytest.raises(ChainError, match=r"InvalidPermitSignature"):
        registry.claim_with_permit(1, consumer.address, provider, item.cumulative, item.proof, forged)
    assert registry.permitted(consumer.address, provider) == 0 and registry.deposit_of(consumer.address) == 1_000


def test_a_permit_for_another_registry_changes_nothing(registry, consumer, provider):
    elsewhere = permit(registry, consumer, provider, 1_000, registry_address=address())
    # the binding refuses it before sending; sent anyway, the registry refuses it too
    f = registry.contract.functions.submitPermit(consumer.address, provider, 1_000, elsewhere.signature)
    with pytest.raises(ChainError, match=r"InvalidPermitSignature"):
        registry.sender.send(f, "submitPermit")
    assert registry.permitted(consumer.address, provider) == 0


def test_a_permit_for_another_chain_changes_nothing(registry, consumer, provider):
    elsewhere = permit(registry, consumer, provider, 1_000, chain_id=1)
    f = registry.contract.functions.submitPermit(consumer.address, provider, 1_000, elsewhere.signature)
    with pytest.raises(ChainError, match=r"InvalidPermitSignature"):
        registry.sender.send(f, "submitPermit")
    assert registry.permitted(consumer.address, provider) == 0


def test_a_lower_permit_replayed_changes_nothing(registry, consumer, provider):
    low, high = (permit(registry, consumer, provider, amount) for amount in (300, 600))
    registry.submit_permit(low)
    registry.submit_permit(high)
    for replay in (low, high):
        with pytest.raises(ChainError, match=r"PermitNotHigher\(.*permitted=600\)"):
            registry.submit_permit(replay)
    tree = tree_of(registry, 1, [(consumer.address, provider, 600)])
    commit_tree(registry, 1, tree)
    finalize(registry, 1)
    item = leaf(tree, consumer.address, provider)
    result = registry.claim_with_permit(1, consumer.address, provider, item.cumulative, item.proof, low)
    assert result.paid == 600 and registry.permitted(consumer.address, provider) == 600


# ----------------------------------------------------------------------------- committed totals
def test_payouts_beyond_the_committed_totals_across_batches_are_refused(registry, provider):
    # Two consumers consent to 1,000 each; the committer declares totals of 300 and then 200 but
    # commits leaves owing 1,000 each. Claims pay no more than the declared totals, in all.
    a, b = Account.create(), Account.create()
    for c in (a, b):
        registry.deposit_for(c.address, 1_000, mint=True)
        consent(registry, c, provider, 1_000)
    first = tree_of(registry, 1, [(a.address, provider, 1_000), (b.address, provider, 1_000)])
    commit_tree(registry, 1, first, total=300)
    finalize(registry, 1)
    paid_a = claim(registry, 1, leaf(first, a.address, provider))
    assert (paid_a.paid, paid_a.shortfall, paid_a.cause) == (300, 700, "committed totals")
    with pytest.raises(ChainError, match=rf"NothingPayable\(batch=1, .*owed=1000, cause={COMMITTED_TOTALS}\)"):
        claim(registry, 1, leaf(first, b.address, provider))

    second = tree_of(registry, 2, [(a.address, provider, 1_000), (b.address, provider, 1_000)])
    commit_tree(registry, 2, second, total=200)
    finalize(registry, 2)
    paid_b = claim(registry, 2, leaf(second, b.address, provider))
    assert (paid_b.paid, paid_b.cause) == (200, "committed totals")
    # an older batch does not reopen room: the bound is the highest batch claimed so far
    with pytest.raises(ChainError, match=rf"cause={COMMITTED_TOTALS}"):
        claim(registry, 1, leaf(first, b.address, provider))
    assert registry.totals() == (500, 500)
    assert registry.token_balance(provider) == 500


# ---------------------------------------------------------------------------------- revocation
def test_revoking_an_older_batch_in_its_challenge_period_revokes_the_later_ones_and_it_is_recommitted(
        registry, consumer, provider):
    c = consumer.address
    consent(registry, consumer, provider, 1_000)
    good = tree_of(registry, 1, [(c, provider, 100)])
    commit_tree(registry, 1, good)
    finalize(registry, 1)
    bad = [tree_of(registry, n, [(c, provider, 100 + 300 * (n - 1))]) for n in (2, 3, 4)]
    for n, tree in zip((2, 3, 4), bad):
        commit_tree(registry, n, tree, total=300)
    result = registry.revoke_batch(2, "batch 2 double-counts node 7")
    assert registry.latest_batch() == 1 and registry.totals()[0] == 100
    assert [registry.batch(n).revoked for n in (1, 2, 3, 4)] == [False, True, True, True]
    # the hostile committer cannot outrun it: the next commit is batch 2 again, not batch 5
    with pytest.raises(ChainError, match=r"BatchOutOfOrder\(batch=5, expected=2\)"):
        commit_tree(registry, 5, bad[2])
    advance_time(registry.w3, CHALLENGE_PERIOD)
    for n, tree in zip((2, 3, 4), bad):
        with pytest.raises(ChainError, match=rf"BatchNotLive\(batch={n}, latestBatch=1\)"):
            claim(registry, n, leaf(tree, c, provider))
    right = tree_of(registry, 2, [(c, provider, 250)])
    commit_tree(registry, 2, right, total=150)
    finalize(registry, 2)
    assert claim(registry, 2, leaf(right, c, provider)).paid == 250
    assert result.tx_hash and registry.batch(2).live and registry.totals() == (250, 250)


def test_revoke_after_the_challenge_period_is_refused(registry):
    registry.commit_batch(1, b"\x11" * 32, 1, 1, b"\x22" * 32)
    registry.commit_batch(2, b"\x11" * 32, 1, 1, b"\x22" * 32)
    finalize(registry, 1)
    with pytest.raises(ChainError, match=r"ChallengePeriodOver\(batch=1"):
        registry.revoke_batch(1, "too late")
    finalize(registry, 2)
    with pytest.raises(ChainError, match=r"ChallengePeriodOver\(batch=2"):
        registry.revoke_batch(2, "too late")
    assert registry.latest_batch() == 2


# --------------------------------------------------------------------------------- withdrawals
def test_withdrawal_outside_its_window_is_refused(registry, as_account, new_account):
    account = new_account()
    consumer = as_account(account)
    registry.deposit_for(account.address, 1_000, mint=True)
    consumer.request_withdrawal(1_000)
    assert registry.available(account.address) == 0
    pending = registry.withdrawal(account.address)
    with pytest.raises(ChainError, match=r"StillThawing"):
        consumer.withdraw()
    advance_to(registry, pending.lapses_at + 1)
    with pytest.raises(ChainError, match=rf"WithdrawalLapsed\(consumer=.*, lapsedAt={pending.lapses_at}\)"):
        consumer.withdraw()
    # a lapsed request reserves nothing: the whole deposit backs claims again
    assert registry.available(account.address) == 1_000 and registry.deposit_of(account.address) == 1_000
    consumer.request_withdrawal(1_000)  # asking again starts a new thaw
    with pytest.raises(ChainError, match=r"StillThawing"):
        consumer.withdraw()
    assert pending.unlock_at + WITHDRAWAL_WINDOW == pending.lapses_at


def test_withdrawal_front_running_a_claim_of_usage_committed_within_max_batch_delay_cannot_escape(
        registry, as_account, new_account, provider):
    account = new_account()
    consumer = as_account(account)
    registry.deposit_for(account.address, 1_000, mint=True)
    consent(registry, account, provider, 900)
    # The consumer uses 900 wei of service, then asks for its whole deposit back at once.
    requested = consumer.request_withdrawal(1_000)
    requested_at = registry.w3.eth.get_block(requested.block)["timestamp"]
    # The committer takes as long as it promised (maxBatchDelay) to commit that usage.
    advance_to(registry, requested_at + MAX_BATCH_DELAY)
    tree = tree_of(registry, 1, [(account.address, provider, 900)])
    commit_tree(registry, 1, tree)
    finalize(registry, 1)
    # The batch is claimable while the withdrawal still thaws: withdrawing first is refused...
    assert registry.block_timestamp() < requested_at + THAW_PERIOD
    with pytest.raises(ChainError, match=r"StillThawing"):
        consumer.withdraw()
    assert claim(registry, 1, leaf(tree, account.address, provider)).paid == 900
    # ...and when the window opens, only what claims left is withdrawn.
    advance_to(registry, requested_at + THAW_PERIOD)
    consumer.withdraw()
    assert registry.token_balance(account.address) == 100 and registry.token_balance(provider) == 900


# ---------------------------------------------------------------------------------- governance
def test_admin_transfer_in_one_step_is_refused(registry, dev, new_account):
    successor = new_account()
    with pytest.raises(ChainError, match=r"AccessControlEnforcedDefaultAdminRules\(\)"):
        registry.grant_role(DEFAULT_ADMIN_ROLE, successor.address)
    registry.begin_admin_transfer(successor.address)
    heir = registry.as_sender(Sender(registry.w3, successor))
    with pytest.raises(ChainError, match=r"AccessControlEnforcedDefaultAdminDelay"):
        heir.accept_admin_transfer()  # not before the delay
    advance_time(registry.w3, ADMIN_DELAY + 1)
    heir.accept_admin_transfer()
    assert registry.default_admin() == successor.address and not registry.has_role(DEFAULT_ADMIN_ROLE, dev.address)


def test_last_admin_renounce_is_refused(registry, dev):
    with pytest.raises(ChainError, match=r"AccessControlEnforcedDefaultAdminDelay\(schedule=0\)"):
        registry.renounce_role(DEFAULT_ADMIN_ROLE)
    assert registry.default_admin() == dev.address
    # a governor that renounces is replaced by the admin, so bad batches stay revocable
    registry.renounce_role(GOVERNANCE_ROLE)
    assert not registry.has_role(GOVERNANCE_ROLE, dev.address)
    registry.grant_role(GOVERNANCE_ROLE, dev.address)
    registry.commit_batch(1, b"\x11" * 32, 1, 1, b"\x22" * 32)
    registry.revoke_batch(1, "still revocable")
    assert registry.latest_batch() == 0


# -------------------------------------------------------------------------------------- stakes
def test_unstaked_provider_is_not_paid(registry, consumer, as_account, new_account):
    account = new_account()
    provider = as_account(account)
    tree = tree_of(registry, 1, [(consumer.address, account.address, 400)])
    commit_tree(registry, 1, tree)
    consent(registry, consumer, account.address, 400)
    finalize(registry, 1)
    item = leaf(tree, consumer.address, account.address)
    with pytest.raises(ChainError, match=rf"ProviderStakeTooLow\(.*bonded=0, required={MIN_PROVIDER_STAKE}\)"):
        claim(registry, 1, item)
    registry.mint(account.address, MIN_PROVIDER_STAKE)
    provider.stake(MIN_PROVIDER_STAKE)
    provider.request_unstake(1)  # what is being unstaked no longer counts
    with pytest.raises(ChainError, match=rf"ProviderStakeTooLow\(.*bonded={MIN_PROVIDER_STAKE - 1}"):
        claim(registry, 1, item)
    registry.stake(1, provider=account.address, mint=True)
    assert claim(registry, 1, item).paid == 400


# ------------------------------------------------------------------------------------ disputes
@pytest.fixture
def disputed(registry, consumer, provider, as_account, new_account):
    """A committed leaf (consumer -> provider, 600) with a permit, disputed by a bonded challenger."""
    tree = tree_of(registry, 1, [(consumer.address, provider, 600)])
    commit_tree(registry, 1, tree)
    consent(registry, consumer, provider, 600)
    challenger_account = new_account()
    challenger = as_account(challenger_account)
    registry.mint(challenger_account.address, DISPUTE_BOND)
    dispute_id, _ = challenger.open_dispute(1, consumer.address, provider, EVIDENCE)
    return tree, dispute_id, challenger_account.address


def test_dispute_freezes_then_slashes(registry, consumer, provider, disputed):
    tree, dispute_id, challenger = disputed
    info = registry.dispute(dispute_id)
    assert (info.state, info.bond, info.challenger, registry.open_disputes(consumer.address, provider)) == (
        "open", DISPUTE_BOND, challenger, 1)
    finalize(registry, 1)
    item = leaf(tree, consumer.address, provider)
    with pytest.raises(ChainError, match=r"LeafDisputed\(.*openDisputes=1\)"):
        claim(registry, 1, item)
    with pytest.raises(ChainError, match=r"ChallengePeriodOver"):  # disputes only while challengeable
        registry.open_dispute(1, consumer.address, provider, EVIDENCE, mint=True)
    max_slash = MIN_PROVIDER_STAKE * TEST_CONFIG.max_slash_bps // 10_000
    with pytest.raises(ChainError, match=rf"SlashTooLarge\(id={dispute_id}, slash={max_slash + 1}, maxSlash={max_slash}\)"):
        registry.resolve_dispute(dispute_id, True, max_slash + 1)
    slash = max_slash - 1  # odd: the odd wei goes to the consumer
    registry.resolve_dispute(dispute_id, True, slash)
    assert registry.dispute(dispute_id).state == "upheld"
    assert registry.stakes(provider).staked == MIN_PROVIDER_STAKE - slash
    assert registry.token_balance(challenger) == slash // 2 + DISPUTE_BOND
    assert registry.deposit_of(consumer.address) == 1_000 + slash - slash // 2
    with pytest.raises(ChainError, match=r"DisputeNotOpen"):
        registry.resolve_dispute(dispute_id, False, 0)
    # unfrozen, but the slashed provider is below the minimum stake now: still not paid
    with pytest.raises(ChainError, match=r"ProviderStakeTooLow"):
        claim(registry, 1, item)


def test_rejected_dispute_pays_the_provider_the_bond(registry, consumer, provider, disputed):
    tree, dispute_id, challenger = disputed
    registry.resolve_dispute(dispute_id, False, 0)
    assert registry.dispute(dispute_id).state == "rejected"
    assert registry.token_balance(provider) == DISPUTE_BOND and registry.token_balance(challenger) == 0
    assert registry.stakes(provider).staked == MIN_PROVIDER_STAKE and registry.open_disputes(consumer.address, provider) == 0
    finalize(registry, 1)
    assert claim(registry, 1, leaf(tree, consumer.address, provider)).paid == 600


def test_unresolved_dispute_expires_after_the_dispute_period(registry, consumer, provider, disputed):
    tree, dispute_id, challenger = disputed
    with pytest.raises(ChainError, match=r"DisputePeriodActive"):
        registry.expire_dispute(dispute_id)
    advance_to(registry, registry.dispute(dispute_id).resolvable_until)
    with pytest.raises(ChainError, match=r"DisputePeriodOver"):
        registry.resolve_dispute(dispute_id, True, 1)
    registry.expire_dispute(dispute_id)
    assert registry.dispute(dispute_id).state == "expired" and registry.token_balance(challenger) == DISPUTE_BOND
    assert claim(registry, 1, leaf(tree, consumer.address, provider)).paid == 600
    assert CHALLENGE_PERIOD + DISPUTE_PERIOD < TEST_CONFIG.unstake_thaw


# ------------------------------------------------------------------------------------- tokens
def test_fee_on_transfer_token_is_refused(dev, anvil_url):
    fee_token = dev.send(contract(dev.w3, FEE_TOKEN).constructor(), "deploy FeeToken").receipt["contractAddress"]
    deployment = deploy(dev, token=fee_token, config=TEST_CONFIG, rpc_url=anvil_url)
    registry = Registry(dev.w3, deployment, dev)
    token = contract(dev.w3, FEE_TOKEN, fee_token)
    dev.send(token.functions.mint(dev.address, 10_000), "mint")
    with pytest.raises(ChainError, match=r"TransferAmountMismatch\(expected=1000, received=990\)"):
        registry.deposit_for(address(), 1_000)
    with pytest.raises(ChainError, match=r"TransferAmountMismatch\(expected=1000, received=990\)"):
        registry.stake(1_000)
    assert registry.token_balance(deployment.registry) == 0


# ----------------------------------------------------------------------------- signers, wallets
def test_erc1271_wallet_permit_is_accepted(registry, dev, provider):
    owner = Account.create()
    wallet = dev.send(contract(dev.w3, TEST_WALLET).constructor(owner.address), "deploy TestWallet") \
        .receipt["contractAddress"]
    registry.deposit_for(wallet, 1_000, mint=True)
    with pytest.raises(ChainError, match=r"InvalidPermitSignature"):  # a key the wallet does not accept
        registry.submit_permit(permit(registry, Account.create(), provider, 700, consumer=wallet))
    registry.submit_permit(permit(registry, owner, provider, 700, consumer=wallet))
    assert registry.permitted(wallet, provider) == 700
    tree = tree_of(registry, 1, [(wallet, provider, 700)])
    commit_tree(registry, 1, tree)
    finalize(registry, 1)
    assert claim(registry, 1, leaf(tree, wallet, provider)).paid == 700
    assert registry.counters(wallet).wei_paid == 700


def test_authorised_signer_works_and_is_refused_after_its_revocation_thaws(registry, as_account, new_account, provider):
    account = new_account()
    consumer = as_account(account)
    registry.deposit_for(account.address, 1_000, mint=True)
    signer = Account.create()
    with pytest.raises(ChainError, match=r"InvalidPermitSignature"):  # not authorised yet
        registry.submit_permit(permit(registry, signer, provider, 100, consumer=account.address))
    consumer.authorize_signer(signer.address)
    registry.submit_permit(permit(registry, signer, provider, 100, consumer=account.address))
    revoked = consumer.revoke_signer(signer.address)
    valid_until = registry.w3.eth.get_block(revoked.block)["timestamp"] + THAW_PERIOD
    # during the thaw, payees can still submit what the signer signed
    registry.submit_permit(permit(registry, signer, provider, 200, consumer=account.address))
    advance_to(registry, valid_until)
    with pytest.raises(ChainError, match=r"InvalidPermitSignature"):
        registry.submit_permit(permit(registry, signer, provider, 300, consumer=account.address))
    assert registry.permitted(account.address, provider) == 200
    assert not registry.is_authorized_signer(account.address, signer.address)
    consent(registry, account, provider, 300)  # the consumer's own key always signs
    assert registry.permitted(account.address, provider) == 300


def test_shortfall_cannot_be_re_emitted_for_free(registry, provider):
    poor = Account.create()
    registry.deposit_for(poor.address, 10, mint=True)
    tree = tree_of(registry, 1, [(poor.address, provider, 100)])
    commit_tree(registry, 1, tree)
    consent(registry, poor, provider, 100)
    finalize(registry, 1)
    assert claim(registry, 1, leaf(tree, poor.address, provider)).shortfall == 90
    for _ in range(2):  # anyone trying again pays gas for a revert, and emits nothing
        with pytest.raises(ChainError, match=rf"NothingPayable\(.*owed=90, cause={DEPOSIT}\)"):
            claim(registry, 1, leaf(tree, poor.address, provider))
