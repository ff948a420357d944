"""slashForDowntime (SPEC §14) on anvil: anyone slashes a provider once per epoch whose round in
its AvailabilityFeed is below the SLA and not stale; everything else is refused."""
import pytest
from eth_account import Account
from web3.logs import DISCARD

from settlement.errors import ChainError
from sinks.chain.deployment import RegistryConfig, deploy
from sinks.chain.feed import Feed, deploy_feed
from sinks.chain.keys import anvil_dev_account
from sinks.chain.registry import Registry, advance_time
from sinks.chain.rpc import Sender, connect

EPOCH_SECONDS = 3600
SLA_BPS = 9_900
SLASH_BPS = 250
STALE_AFTER = 2 * EPOCH_SECONDS
STAKE = 4 * 10**18
TREASURY = "0x000000000000000000000000000000000000Fee5"


def funded(w3):
    account = Account.create()
    w3.provider.make_request("anvil_setBalance", [account.address, hex(10**19)])
    return account


@pytest.fixture
def setup(anvil_url):
    w3 = connect(anvil_url)
    dev = Sender(w3, anvil_dev_account())
    config = RegistryConfig(treasury=TREASURY, challenge_period=100, max_batch_delay=50, thaw_period=300,
                            dispute_period=100, unstake_thaw=300, sla_bps=SLA_BPS, downtime_slash_bps=SLASH_BPS,
                            feed_stale_after=STALE_AFTER)
    deployment = deploy(dev, test_token=True, config=config, rpc_url=anvil_url)
    registry = Registry(w3, deployment, dev)
    provider = funded(w3).address
    feed = Feed(w3, deploy_feed(dev, provider, EPOCH_SECONDS), dev)
    registry.set_availability_feed(provider, feed.deployment.feed)
    registry.stake(STAKE, provider=provider, mint=True)
    now = w3.eth.get_block("latest")["timestamp"]
    epoch = now // EPOCH_SECONDS - 1  # the last epoch that is over
    return w3, registry, feed, provider, epoch


def staked(registry, provider):
    return registry.stakes(provider).staked


def test_a_round_below_the_sla_slashes_once_to_the_treasury(setup):
    w3, registry, feed, provider, epoch = setup
    feed.submit(epoch, SLA_BPS - 1)
    anyone = registry.as_sender(Sender(w3, funded(w3)))
    before = registry.token_balance(TREASURY)
    result = anyone.slash_for_downtime(provider, epoch)
    slashed = STAKE * SLASH_BPS // 10_000
    assert staked(registry, provider) == STAKE - slashed
    assert registry.token_balance(TREASURY) - before == slashed
    event = registry.contract.events.SlashedForDowntime().process_receipt(result.receipt, errors=DISCARD)[0]["args"]
    assert (event["provider"], event["epoch"], event["availabilityBps"], event["amount"]) == (
        provider, epoch, SLA_BPS - 1, slashed)
    assert registry.downtime_slashed(provider, epoch)
    with pytest.raises(ChainError, match="AlreadySlashedForDowntime"):
        anyone.slash_for_downtime(provider, epoch)
    assert staked(registry, provider) == STAKE - slashed


def test_a_round_at_the_sla_is_refused(setup):
    _, registry, feed, provider, epoch = setup
    feed.submit(epoch, SLA_BPS)
    with pytest.raises(ChainError, match="AvailabilityMeetsSla"):
        registry.slash_for_downtime(provider, epoch)
    assert staked(registry, provider) == STAKE


def test_a_stale_round_is_refused(setup):
    w3, registry, feed, provider, epoch = setup
    feed.submit(epoch, 0)
    advance_time(w3, STALE_AFTER + 1)
    with pytest.raises(ChainError, match="StaleAvailabilityRound"):
        registry.slash_for_downtime(provider, epoch)
    assert staked(registry, provider) == STAKE


def test_an_epoch_without_a_round_or_a_provider_without_a_feed_is_refused(setup):
    w3, registry, feed, provider, epoch = setup
    with pytest.raises(ChainError, match="NoDataPresent"):
        registry.slash_for_downtime(provider, epoch)
    with pytest.raises(ChainError, match="NoAvailabilityFeed"):
        registry.slash_for_downtime(funded(w3).address, epoch)


def test_only_governance_names_a_feed_and_only_the_feed_of_that_provider(setup):
    w3, registry, feed, provider, epoch = setup
    stranger = registry.as_sender(Sender(w3, funded(w3)))
    with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
        stranger.set_availability_feed(provider, feed.deployment.feed)
    with pytest.raises(ChainError, match="FeedProviderMismatch"):
        registry.set_availability_feed(funded(w3).address, feed.deployment.feed)
