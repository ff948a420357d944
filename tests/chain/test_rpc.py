"""Sending: reverts and timeouts become ChainErrors naming the tx; retries; confirmations."""
from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from settlement.errors import ChainError, UsageError
from sinks.chain.keys import anvil_dev_account
from sinks.chain.registry import Registry
from sinks.chain.rpc import Sender, connect
from tests.chain.helpers import address, claim, commit_tree, leaf, settlement_tree

TX_HASH = re.compile(r"tx (0x[0-9a-f]{64})")


def test_a_mined_revert_names_the_tx_hash_and_the_custom_error(registry):
    consumer, payee = address(), address()
    d = registry.deployment
    tree = settlement_tree(d.chain_id, d.registry, 1, [(consumer, payee, 10)])
    commit_tree(registry, 1, tree)
    with pytest.raises(ChainError) as caught:  # a fixed gas limit skips the estimate: it is mined
        claim(registry, 1, leaf(tree, consumer, payee), gas=200_000)
    message = str(caught.value)
    assert "ChallengePeriodActive(batch=1, claimableAt=" in message
    tx_hash = TX_HASH.search(message).group(1)
    assert registry.w3.eth.get_transaction_receipt(tx_hash)["status"] == 0


def test_a_revert_found_by_the_estimate_is_not_sent(registry):
    nonce = registry.w3.eth.get_transaction_count(registry.sender.address)
    with pytest.raises(ChainError, match=r"commitBatch\(7\) would revert: BatchOutOfOrder\(batch=7, expected=1\); not sent"):
        registry.commit_batch(7, b"\x01" * 32, 1, 1, b"\x02" * 32)
    assert registry.w3.eth.get_transaction_count(registry.sender.address) == nonce


def test_a_transaction_not_mined_in_time_names_its_hash(w3, deployment):
    slow = Registry(w3, deployment, Sender(w3, anvil_dev_account(), timeout=0.5))
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        with pytest.raises(ChainError, match="not mined within 0.5 s") as caught:
            slow.commit_batch(1, b"\x01" * 32, 1, 1, b"\x02" * 32)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        w3.provider.make_request("evm_mine", [])
    tx_hash = TX_HASH.search(str(caught.value)).group(1)
    assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 1  # it was mined later, as warned


def test_confirmations_wait_for_later_blocks(w3, deployment):
    patient = Registry(w3, deployment, Sender(w3, anvil_dev_account(), confirmations=3, timeout=10))
    stop = threading.Event()

    def mine():
        while not stop.wait(0.2):
            w3.provider.make_request("evm_mine", [])

    miner = threading.Thread(target=mine)
    miner.start()
    try:
        result = patient.commit_batch(1, b"\x01" * 32, 1, 1, b"\x02" * 32)
    finally:
        stop.set()
        miner.join()
    assert w3.eth.block_number >= result.block + 2


def test_missing_confirmations_time_out_naming_the_tx(w3, deployment):
    impatient = Registry(w3, deployment, Sender(w3, anvil_dev_account(), confirmations=2, timeout=2.0))
    with pytest.raises(ChainError, match=r"tx 0x[0-9a-f]{64} mined in block \d+ has 1 of 2 confirmations"):
        impatient.commit_batch(1, b"\x01" * 32, 1, 1, b"\x02" * 32)


def test_zero_confirmations_is_a_usage_error(w3):
    with pytest.raises(UsageError, match="at least 1"):
        Sender(w3, anvil_dev_account(), confirmations=0)


class FlakyProxy:
    """Forwards JSON-RPC to anvil but answers HTTP 503 to every `every`-th request."""

    def __init__(self, target: str, every: int):
        self.count = 0
        self.failed = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.count += 1
                if proxy.count % every == 1:
                    proxy.failed += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = requests.post(target, data=body, headers={"Content-Type": "application/json"}, timeout=10)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_transient_rpc_errors_are_retried(anvil_url, deployment):
    with FlakyProxy(anvil_url, every=3) as proxy:
        w3 = connect(proxy.url, expected_chain_id=deployment.chain_id)
        flaky = Registry(w3, deployment, Sender(w3, anvil_dev_account()))
        flaky.commit_batch(1, b"\x01" * 32, 1, 1, b"\x02" * 32)
        assert flaky.latest_batch() == 1
    assert proxy.failed >= 3


def test_an_unreachable_node_is_a_chain_error(monkeypatch):
    from sinks.chain import anvil, rpc

    monkeypatch.setattr(rpc.RETRY, "backoff_factor", 0.001)
    url = f"http://127.0.0.1:{anvil.free_port()}"
    started = time.monotonic()
    with pytest.raises(ChainError, match=f"no Ethereum node answers at {url}"):
        connect(url)
    assert time.monotonic() - started < 5


def test_a_node_on_another_chain_is_refused(anvil_url):
    with pytest.raises(UsageError, match="is chain 31337 but the deployment is on chain 5"):
        connect(anvil_url, expected_chain_id=5)
