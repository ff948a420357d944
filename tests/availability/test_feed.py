"""AvailabilityFeed on anvil: Chainlink's AggregatorV3Interface, one round per epoch, written only
by the oracle role; `oracle push` (the node stand-in) writes what the adapter answers."""
import pytest
from eth_account import Account

from settlement.errors import ChainError
from sinks.chain.feed import Feed, deploy_feed
from sinks.chain.keys import anvil_dev_account
from sinks.chain.registry import advance_time
from sinks.chain.rpc import Sender, connect
from tests.availability.conftest import EPOCH, EXPECTED
from tests.support.events import PROVIDER_A

EPOCH_SECONDS = 3600


def funded(w3):
    account = Account.create()
    w3.provider.make_request("anvil_setBalance", [account.address, hex(10**19)])
    return account


@pytest.fixture
def chain(anvil_url):
    w3 = connect(anvil_url)
    return w3, Sender(w3, anvil_dev_account())


@pytest.fixture
def feed(chain, anvil_url):
    w3, dev = chain
    oracle = funded(w3)
    deployment = deploy_feed(dev, PROVIDER_A, EPOCH_SECONDS, oracle=oracle.address, rpc_url=anvil_url)
    return Feed(w3, deployment, Sender(w3, oracle)), dev


def past(w3, epoch):
    """Move the chain's clock past the end of `epoch` (it only moves forward)."""
    now = w3.eth.get_block("latest")["timestamp"]
    end = (epoch + 1) * EPOCH_SECONDS
    if now < end:
        advance_time(w3, end - now + 1)


def test_feed_speaks_aggregator_v3(feed):
    feed, _ = feed
    c = feed.contract.functions
    assert c.decimals().call() == 4
    assert c.version().call() == 1
    assert PROVIDER_A in c.description().call()
    assert c.provider().call() == PROVIDER_A


def test_oracle_writes_one_round_per_epoch_and_staleness_shows_in_updated_at(feed):
    feed, _ = feed
    past(feed.w3, EPOCH + 1)
    feed.submit(EPOCH, 9950)
    first = feed.latest()
    assert (first.round_id, first.answer, first.started_at) == (1, 9950, EPOCH * EPOCH_SECONDS)
    assert first.updated_at == feed.w3.eth.get_block("latest")["timestamp"]
    rid, answer, started, updated, answered = feed.contract.functions.latestRoundData().call()
    assert (rid, answer, answered) == (1, 9950, 1)
    with pytest.raises(ChainError, match="EpochNotAfterLatest"):
        feed.submit(EPOCH, 10000)  # a second round for the same epoch
    advance_time(feed.w3, 500)
    feed.submit(EPOCH + 1, 4000)
    second = feed.round_of_epoch(EPOCH + 1)
    assert (second.round_id, second.answer) == (2, 4000)
    assert second.updated_at - first.updated_at >= 500
    assert feed.round_of_epoch(EPOCH).answer == 9950


def test_feed_refuses_writes_from_anyone_but_the_oracle(feed, chain):
    feed, dev = feed
    w3, _ = chain
    past(w3, EPOCH)
    for account in (funded(w3), dev.account):  # a stranger, and the admin who deployed it
        stranger = Feed(w3, feed.deployment, Sender(w3, account))
        with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
            stranger.submit(EPOCH, 0)
    assert feed.latest() is None


def test_feed_refuses_an_epoch_not_over_and_an_answer_above_10000(feed):
    feed, _ = feed
    now = feed.w3.eth.get_block("latest")["timestamp"]
    current = now // EPOCH_SECONDS
    with pytest.raises(ChainError, match="EpochNotOver"):
        feed.submit(current, 10000)
    with pytest.raises(ChainError, match="AnswerOutOfRange"):
        feed.submit(current - 1, 10001)


def test_oracle_push_writes_what_the_adapter_answers(feed, adapter_url, tmp_path, capsys):
    from pipelines.cli import main

    feed, _ = feed
    past(feed.w3, EPOCH + 1)
    feed_file = tmp_path / "feed.json"
    feed.deployment.write(feed_file)
    key = "0x" + bytes(feed.sender.account.key).hex()
    args = ["oracle", "push", "--adapter", adapter_url, "--feed", str(feed_file), "--epoch", str(EPOCH),
            "--private-key", key]
    assert main(args) == 0
    assert feed.round_of_epoch(EPOCH).answer == EXPECTED[(PROVIDER_A, EPOCH)][2]
    assert main(args) == 0  # the epoch is reported already: nothing is sent
    assert "nothing sent" in capsys.readouterr().out
    assert feed.latest().round_id == 1
    missing = ["oracle", "push", "--adapter", adapter_url, "--feed", str(feed_file), "--epoch", str(EPOCH + 5),
               "--private-key", key]
    assert main(missing) == 1  # the adapter has no figure for that epoch: refused, nothing written
    assert "HTTP 404" in capsys.readouterr().err
