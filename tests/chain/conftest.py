"""One anvil for the whole chain suite, on a free port of 127.0.0.1; fresh contracts per test.

Tests isolate themselves by deploying their own token and registry (two transactions), not by
reverting snapshots: the chain's clock only moves forward, which every test tolerates.
"""
from __future__ import annotations

import pytest
from eth_account import Account

from sinks.chain.deployment import RegistryConfig, deploy
from sinks.chain.keys import anvil_dev_account
from sinks.chain.registry import Registry
from sinks.chain.rpc import Sender, connect

CHALLENGE_PERIOD = 100
MAX_BATCH_DELAY = 50
THAW_PERIOD = 300
WITHDRAWAL_WINDOW = 100
DISPUTE_PERIOD = 100
UNSTAKE_THAW = 250
ADMIN_DELAY = 60
MIN_PROVIDER_STAKE = 1_000
DISPUTE_BOND = 50
MAX_SLASH_BPS = 5_000
TREASURY = "0x000000000000000000000000000000000000Fee5"
TEST_CONFIG = RegistryConfig(
    treasury=TREASURY, challenge_period=CHALLENGE_PERIOD, max_batch_delay=MAX_BATCH_DELAY,
    thaw_period=THAW_PERIOD, withdrawal_window=WITHDRAWAL_WINDOW, dispute_period=DISPUTE_PERIOD,
    unstake_thaw=UNSTAKE_THAW, admin_delay=ADMIN_DELAY, min_provider_stake=MIN_PROVIDER_STAKE,
    dispute_bond=DISPUTE_BOND, max_slash_bps=MAX_SLASH_BPS)
"""Short periods (the tests move anvil's clock) and small stakes, in test-token wei."""


@pytest.fixture(scope="session")
def w3(anvil_url):
    return connect(anvil_url)


@pytest.fixture(scope="session")
def dev(w3):
    """Sender signing with anvil's first dev key: deployer, admin, committer, governance."""
    return Sender(w3, anvil_dev_account())


@pytest.fixture
def new_account(w3):
    """Factory of fresh accounts holding 10 ETH for gas."""
    def make():
        account = Account.create()
        w3.provider.make_request("anvil_setBalance", [account.address, hex(10 * 10**18)])
        return account
    return make


@pytest.fixture
def deployment(dev, anvil_url):
    return deploy(dev, test_token=True, config=TEST_CONFIG, rpc_url=anvil_url)


@pytest.fixture
def registry(w3, deployment, dev):
    """The fresh registry, driven by the dev key."""
    return Registry(w3, deployment, dev)


@pytest.fixture
def as_account(w3, deployment):
    """`as_account(account)`: the same registry driven by another key."""
    return lambda account: Registry(w3, deployment, Sender(w3, account))
