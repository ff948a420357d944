"""The chain client against network faults, on the real anvil behind a fault proxy.

Each test states the fault and what the client must do: send once, wait the outage out, replace
a stuck transaction within the caps, never report a reorganised-away or reverted commit as a
success.
"""
from __future__ import annotations

import logging
import threading
import time

import pytest

from settlement.errors import ChainError
from sinks.chain.deployment import deploy
from sinks.chain.fees import GWEI, FeeCaps
from sinks.chain.journal import MINED, REBROADCAST, Journal
from sinks.chain.registry import COMMITTER_ROLE, Registry
from sinks.chain.rpc import Sender, connect
from tests.chain.conftest import TEST_CONFIG
from tests.support.fault_proxy import FaultProxy

ROOT, OTHER_ROOT, MANIFEST = b"\x01" * 32, b"\x03" * 32, b"\x02" * 32


@pytest.fixture
def operator(w3, new_account):
    """A fresh funded account that deploys its own registry (it holds every role)."""
    account = new_account()
    deployment = deploy(Sender(w3, account), test_token=True, config=TEST_CONFIG)
    return account, deployment


@pytest.fixture
def automine_off(w3):
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        yield
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
        w3.provider.make_request("evm_mine", [])


def wait_for(condition, seconds: float = 15, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Background:
    """Runs `registry.commit_batch(1, ROOT, ...)` on a thread; keeps its result or error."""

    def __init__(self, registry: Registry, root: bytes = ROOT):
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(registry, root), daemon=True)
        self.thread.start()

    def _run(self, registry, root):
        try:
            self.result = registry.commit_batch(1, root, 1, 1, MANIFEST)
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc

    def join(self, seconds: float = 30):
        self.thread.join(seconds)
        assert not self.thread.is_alive(), "the send did not finish"
        return self


def only_record(sender: Sender):
    records = list(sender.journal._records.values())
    assert len(records) == 1
    return records[0]


def test_a_lost_reply_then_an_outage_fails_naming_the_tx_and_the_rerun_sends_nothing_new(
        w3, anvil_url, operator, tmp_path):
    account, deployment = operator
    journal = tmp_path / "chain" / "journal.jsonl"
    nonce = w3.eth.get_transaction_count(account.address)
    with FaultProxy(anvil_url) as proxy:
        first = connect(proxy.url, rpc_timeout=1)
        proxy.drop_reply_then_down("eth_sendRawTransaction", 3)
        sender = Sender(first, account, journal=Journal(journal))
        with pytest.raises(ChainError) as caught:
            Registry(first, deployment, sender).commit_batch(1, ROOT, 1, 1, MANIFEST)
        message = str(caught.value)
        tx_hash = only_record(sender).latest.hash
        assert tx_hash in message and "rerun the same command to resume it" in message
        assert str(journal) in message
        sent = proxy.forwarded("eth_sendRawTransaction")

        wait_for(lambda: _answers(proxy.url), what="the proxy to come back")
        again = connect(proxy.url)
        result = Registry(again, deployment, Sender(again, account, journal=Journal(journal))) \
            .commit_batch(1, ROOT, 1, 1, MANIFEST)
        assert proxy.forwarded("eth_sendRawTransaction") == sent  # the rerun sent nothing
    assert result.tx_hash == tx_hash and result.resumed
    assert w3.eth.get_transaction_count(account.address) == nonce + 1  # one transaction, ever


def test_a_send_that_never_reached_the_node_is_rebroadcast_once_by_the_rerun(w3, anvil_url, operator, tmp_path):
    account, deployment = operator
    journal = tmp_path / "journal.jsonl"
    nonce = w3.eth.get_transaction_count(account.address)
    with FaultProxy(anvil_url) as proxy:
        first = connect(proxy.url, rpc_timeout=0.5)
        proxy.fail("eth_sendRawTransaction", 503, count=1000)
        sender = Sender(first, account, journal=Journal(journal))
        with pytest.raises(ChainError, match="while sending it"):
            Registry(first, deployment, sender).commit_batch(1, ROOT, 1, 1, MANIFEST)
        assert proxy.forwarded("eth_sendRawTransaction") == 0
        proxy.faults.clear()
        again = connect(proxy.url)
        result = Registry(again, deployment, Sender(again, account, journal=Journal(journal))) \
            .commit_batch(1, ROOT, 1, 1, MANIFEST)
        assert proxy.forwarded("eth_sendRawTransaction") == 1
    assert result.tx_hash == only_record(sender).latest.hash
    assert w3.eth.get_transaction_count(account.address) == nonce + 1


def test_replies_dropped_delayed_and_refused_are_retried_into_one_transaction(w3, anvil_url, operator):
    account, deployment = operator
    nonce = w3.eth.get_transaction_count(account.address)
    with FaultProxy(anvil_url) as proxy:
        flaky = connect(proxy.url, rpc_timeout=10, request_timeout=1)
        proxy.drop_reply("eth_sendRawTransaction")
        proxy.fail("eth_getTransactionReceipt", 502, count=2)
        proxy.fail("eth_blockNumber", 429, count=1)
        proxy.delay(1.5, "eth_getTransactionReceipt")  # beyond the 1 s request timeout: retried
        result = Registry(flaky, deployment, Sender(flaky, account)).commit_batch(1, ROOT, 1, 1, MANIFEST)
        assert proxy.forwarded("eth_sendRawTransaction") >= 1
    assert w3.eth.get_transaction_receipt(result.tx_hash)["status"] == 1
    assert w3.eth.get_transaction_count(account.address) == nonce + 1


def test_a_stuck_transaction_is_replaced_at_the_same_nonce_with_bumped_fees(w3, operator, automine_off, miner,
                                                                            caplog):
    account, deployment = operator
    sender = Sender(w3, account, replace_after=0.5, timeout=30)
    background = Background(Registry(w3, deployment, sender))
    wait_for(lambda: sender.journal._records, what="the first attempt")
    first = only_record(sender).latest
    # The base fee jumps above what the first attempt offers: a mined block leaves it out.
    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(first.max_fee * 4)])
    w3.provider.make_request("evm_mine", [])
    wait_for(lambda: len(only_record(sender).attempts) >= 2, what="a replacement")
    miner.start()
    background.join()
    assert background.error is None, background.error
    record = only_record(sender) if sender.journal._records else None
    mined = w3.eth.get_transaction(background.result.tx_hash)
    assert background.result.tx_hash != first.hash
    assert mined["nonce"] == w3.eth.get_transaction_count(account.address) - 1
    assert mined["maxFeePerGas"] > first.max_fee * 4 and mined["maxPriorityFeePerGas"] > first.priority_fee
    assert record is None  # finished: forgotten by the in-memory journal
    assert "replaced at nonce" in caplog.text


def test_a_stuck_transaction_is_not_bumped_beyond_the_fee_cap(w3, operator, automine_off, miner, caplog):
    account, deployment = operator
    caps = FeeCaps(max_fee=5 * GWEI, priority_fee=2 * GWEI)
    sender = Sender(w3, account, replace_after=0.3, timeout=30, fee_caps=caps)
    background = Background(Registry(w3, deployment, sender))
    wait_for(lambda: sender.journal._records, what="the first attempt")
    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(20 * GWEI)])
    w3.provider.make_request("evm_mine", [])
    caplog.set_level(logging.WARNING, "meterroot.chain")
    wait_for(lambda: "fee caps leave no room" in caplog.text or len(only_record(sender).attempts) > 2,
             what="the cap warning")
    attempts = only_record(sender).attempts
    assert all(a.max_fee <= caps.max_fee and a.priority_fee <= caps.priority_fee for a in attempts)
    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])  # the market calms down
    miner.start()
    background.join()
    assert background.error is None, background.error
    assert w3.eth.get_transaction(background.result.tx_hash)["maxFeePerGas"] <= caps.max_fee


@pytest.fixture
def miner(w3):
    """`miner.start()` mines a block every 0.1 s until the test ends."""
    stop = threading.Event()

    class Miner:
        def start(self):
            def mine():
                while not stop.wait(0.1):
                    w3.provider.make_request("evm_mine", [])
            threading.Thread(target=mine, daemon=True).start()

    yield Miner()
    stop.set()


def test_a_commit_reorganised_away_before_its_confirmations_is_rebroadcast_and_confirmed(w3, operator, miner):
    account, deployment = operator
    sender = Sender(w3, account, confirmations=3, timeout=30)
    registry = Registry(w3, deployment, sender)
    background = Background(registry)
    wait_for(lambda: sender.journal._records and only_record(sender).state == MINED, what="the commit mined")
    first_block = only_record(sender).block
    w3.provider.make_request("anvil_reorg", [1, []])  # its block is replaced by an empty one
    miner.start()
    background.join()
    assert background.error is None, background.error
    receipt = w3.eth.get_transaction_receipt(background.result.tx_hash)
    assert receipt["status"] == 1 and receipt["blockNumber"] > first_block
    assert w3.eth.get_block(receipt["blockNumber"])["hash"] == receipt["blockHash"]
    assert registry.latest_batch() == 1


def test_a_commit_that_reverts_after_a_reorg_is_reported_as_a_failure_not_a_success(
        w3, operator, new_account, miner, tmp_path):
    account, deployment = operator
    rival = new_account()
    admin = Registry(w3, deployment, Sender(w3, account))
    admin.sender.send(admin.contract.functions.grantRole(COMMITTER_ROLE, rival.address), "grantRole")
    journal = Journal(tmp_path / "journal.jsonl")
    sender = Sender(w3, account, confirmations=3, timeout=30, journal=journal)
    background = Background(Registry(w3, deployment, sender))
    wait_for(lambda: only_record_or_none(journal) and only_record_or_none(journal).state == MINED,
             what="the commit mined")
    # The reorganised chain carries the rival's commit of batch 1 instead: ours can only revert now.
    rival_commit = admin.contract.functions.commitBatch(1, OTHER_ROOT, 1, 1, MANIFEST, "").build_transaction({
        "from": rival.address, "nonce": w3.eth.get_transaction_count(rival.address), "gas": 200_000,
        "maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": GWEI, "chainId": w3.eth.chain_id})
    raw = "0x" + bytes(rival.sign_transaction(rival_commit).raw_transaction).hex()
    w3.provider.make_request("anvil_reorg", [1, [[raw, 0]]])
    miner.start()
    background.join()
    assert background.result is None
    assert "reverted" in str(background.error) and "BatchOutOfOrder" in str(background.error)
    states = [line for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert any(f'"state": "{REBROADCAST}"' in line for line in states)
    assert '"state": "reverted"' in states[-1] and '"state": "confirmed"' not in "".join(states)
    assert bytes(admin.contract.functions.batchInfo(1).call()[0]) == OTHER_ROOT


def only_record_or_none(journal: Journal):
    records = list(journal._records.values())
    return records[0] if len(records) == 1 else None


def _answers(url: str) -> bool:
    import requests
    try:
        return requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                             timeout=1).ok
    except requests.RequestException:
        return False


def test_a_rerun_waits_for_the_pending_commit_instead_of_queueing_a_second_that_would_revert(
        w3, operator, automine_off, tmp_path):
    account, deployment = operator
    journal = tmp_path / "journal.jsonl"
    nonce = w3.eth.get_transaction_count(account.address)
    impatient = Sender(w3, account, timeout=0.3, journal=Journal(journal))
    with pytest.raises(ChainError, match="still pending at nonce"):
        Registry(w3, deployment, impatient).commit_batch(1, ROOT, 1, 1, MANIFEST)
    # The rerun differs (another dataURI): a new intent, but the pending commit is followed first.
    threading.Timer(1.0, lambda: w3.provider.make_request("evm_mine", [])).start()
    rerun = Registry(w3, deployment, Sender(w3, account, timeout=30, journal=Journal(journal)))
    with pytest.raises(ChainError, match=r"would revert: .*; not sent"):
        rerun.commit_batch(1, ROOT, 1, 1, MANIFEST, "https://batches.example/1")
    assert w3.eth.get_transaction_count(account.address) == nonce + 1  # the first commit only
    assert rerun.latest_batch() == 1
