"""An operator's mainnet-style run: a non-development chain id, a keystore, fee caps,
confirmations, an RPC URL carrying credentials, outages, and `chain watch` under a signal.

Nothing secret (key, password, URL token or credentials) may show in output, logs, files, or
the command lines of the processes involved.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from eth_account import Account

from pipelines.cli import main
from sinks.chain import anvil
from sinks.chain.artifacts import TEST_TOKEN
from sinks.chain.deployment import Deployment, contract, deploy
from sinks.chain.keys import anvil_dev_account, load_keystore, write_keystore
from sinks.chain.registry import Registry
from sinks.chain.rpc import Sender, connect
from tests.chain.helpers import address, settlement_tree, write_batch
from tests.support.fault_proxy import FaultProxy

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "operator-passphrase-41"
TOKEN, USER_SECRET = "TOKEN-SECRET-7f3a", "PW-SECRET-9c1d"
CHALLENGE, THAW = 3600, 3 * 86_400  # the default max batch delay is a day


def run(capsys, *argv):
    code = main(["chain", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def chain_one(tmp_path_factory):
    """A second anvil serving chain id 1, as a mainnet stand-in; blocks mined every 0.2 s."""
    port = anvil.free_port()
    log_file = tmp_path_factory.mktemp("anvil1") / "anvil.log"
    process = anvil.launch(port, log_file, chain_id=1)
    url = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    try:
        anvil.wait_ready(url, process, log_file)
        w3 = connect(url)

        def mine():
            while not stop.wait(0.2):
                w3.provider.make_request("evm_mine", [])

        threading.Thread(target=mine, daemon=True).start()
        yield SimpleNamespace(url=url, pid=process.pid, w3=w3)
    finally:
        stop.set()
        anvil.terminate(process.pid)


@pytest.fixture(scope="module")
def operator_key(chain_one, tmp_path_factory):
    """A funded operator key in a v3 keystore with its password file; and a token on chain 1."""
    folder = tmp_path_factory.mktemp("keys")
    account = Account.create()
    keystore, password_file = folder / "operator.json", folder / "password"
    write_keystore(keystore, account.key, PASSWORD, kdf="scrypt", iterations=2**12)
    password_file.write_text(PASSWORD + "\n")
    chain_one.w3.provider.make_request("anvil_setBalance", [account.address, hex(10 * 10**18)])
    token = Sender(chain_one.w3, anvil_dev_account()).send(
        contract(chain_one.w3, TEST_TOKEN).constructor(), "deploy token").receipt["contractAddress"]
    return SimpleNamespace(account=account, keystore=keystore, password_file=password_file, token=token)


@pytest.fixture
def secret_proxy(chain_one, monkeypatch):
    """A proxy to chain 1 reached through a URL with credentials and an API key in its path,
    given in METERROOT_RPC_URL (not argv)."""
    with FaultProxy(chain_one.url) as proxy:
        proxy.secret_url = f"http://ops:{USER_SECRET}@127.0.0.1:{proxy.port}/v3/{TOKEN}"
        monkeypatch.setenv("METERROOT_RPC_URL", proxy.secret_url)
        yield proxy


def secrets_of(key) -> list[str]:
    return [key.account.key.hex(), PASSWORD, TOKEN, USER_SECRET]


def assert_no_secret(text: str, key) -> None:
    for secret in secrets_of(key):
        assert secret not in text


def files_text(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_an_operator_run_on_a_mainnet_chain_id_leaks_no_secret(tmp_path, chain_one, operator_key,
                                                                secret_proxy, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    key = operator_key
    signing = ["--keystore", key.keystore, "--password-file", key.password_file, "--max-fee-gwei", "50",
               "--priority-fee-gwei", "2", "--confirmations", 2]
    deployment_file, out = tmp_path / "deployment.json", tmp_path / "out"
    printed = []

    code, o, e = run(capsys, "deploy", "--token", key.token, "--private-key", "0x" + key.account.key.hex(),
                     "--out", deployment_file)
    printed.append(o + e)
    assert code == 2 and "--private-key is refused on chain 1" in e and "--keystore" in e

    # off the development chain admin and governance must be keys other than the committer's
    admin, governance = Account.create().address, Account.create().address
    code, o, e = run(capsys, "deploy", "--token", key.token, "--challenge-period", CHALLENGE,
                     "--thaw-period", THAW, "--admin", admin, "--governance", governance, *signing,
                     "--out", deployment_file)
    printed.append(o + e)
    assert code == 0, e
    d = json.loads(deployment_file.read_text())
    assert d["rpc_url"] is None and d["committer"] == key.account.address

    tree = settlement_tree(1, d["registry"], 1, [(address(), address(), 5)])
    write_batch(out, 1, tree, chain_id=1, registry=d["registry"])
    for _ in range(2):  # the rerun finds it on chain: skipped
        code, o, e = run(capsys, "commit", "--output", out, "--deployment", deployment_file, *signing,
                         "--skip-validation")
        printed.append(o + e)
        assert code == 0, e
    assert "batch 1: committed root" in printed[-2] and "already committed" in printed[-1]
    tx = chain_one.w3.eth.get_transaction(json.loads(
        (out / "chain" / "journal.jsonl").read_text().splitlines()[0])["hash"])
    assert tx["maxFeePerGas"] <= 50 * 10**9 and tx["maxPriorityFeePerGas"] <= 2 * 10**9

    code, o, e = run(capsys, "status", "--deployment", deployment_file)
    printed.append(o + e)
    assert code == 0, e
    status = json.loads(o)
    assert status["deployment_file_differences"] == [] and status["batches"][0]["state"] == "in challenge period"

    secret_proxy.down(3)
    code, o, e = run(capsys, "status", "--deployment", deployment_file, "--rpc-timeout", "1")
    printed.append(o + e)
    assert code == 1 and f"http://127.0.0.1:{secret_proxy.port}" in e

    assert f"/v3/{TOKEN}" in secret_proxy.paths  # the client did use the secret URL
    assert_no_secret("".join(printed) + caplog.text + files_text(tmp_path), key)


def test_status_reads_the_chain_and_names_where_an_edited_deployment_file_differs(
        tmp_path, chain_one, operator_key, secret_proxy, capsys):
    key = operator_key
    account = load_keystore(key.keystore, PASSWORD)
    w3 = chain_one.w3
    deployment = deploy(Sender(w3, account), token=key.token, challenge_period=CHALLENGE, thaw_period=THAW)
    registry = Registry(w3, deployment, Sender(w3, account))
    registry.commit_batch(1, b"\x01" * 32, 5, 1, b"\x02" * 32)
    edited = Deployment(**{**deployment.to_json(), "challenge_period": 0, "committer": address()})
    file = tmp_path / "edited.json"
    edited.write(file)

    code, o, e = run(capsys, "status", "--deployment", file)
    assert code == 0, e
    report = json.loads(o)
    assert report["batches"][0]["state"] == "in challenge period"  # the chain's period, not the file's 0
    assert report["challenge_period"] == CHALLENGE
    differences = " | ".join(report["deployment_file_differences"])
    assert "challenge_period: the file says 0, the chain says 3600" in differences
    assert f"committer: the file says {edited.committer}" in differences
    assert "differs from the chain" in e

    out = tmp_path / "out"
    write_batch(out, 2, settlement_tree(1, deployment.registry, 2, [(address(), address(), 5)]),
                chain_id=1, registry=deployment.registry)
    code, o, e = run(capsys, "commit", "--output", out, "--deployment", file, "--keystore", key.keystore,
                     "--password-file", key.password_file, "--skip-validation")
    assert code == 2 and "does not describe the registry on chain" in e
    assert registry.latest_batch() == 1


def test_a_node_down_for_20_seconds_mid_commit_is_waited_out_and_the_commit_resumes(
        tmp_path, anvil_url, w3, capsys):
    deployment_file, out = tmp_path / "deployment.json", tmp_path / "out"
    code, _, e = run(capsys, "deploy", "--rpc-url", anvil_url, "--test-token", "--challenge-period", 100,
                     "--thaw-period", THAW, "--out", deployment_file)
    assert code == 0, e
    d = json.loads(deployment_file.read_text())
    for batch in (1, 2):
        tree = settlement_tree(d["chain_id"], d["registry"], batch, [(address(), address(), batch)])
        write_batch(out, batch, tree, chain_id=d["chain_id"], registry=d["registry"])
    sender = anvil_dev_account().address
    nonce = w3.eth.get_transaction_count(sender)
    with FaultProxy(anvil_url) as proxy:
        proxy.down_after("eth_sendRawTransaction", 20)  # batch 1's commit is answered, then nothing
        started = time.monotonic()
        code, o, e = run(capsys, "commit", "--output", out, "--deployment", deployment_file, "--rpc-url",
                         proxy.url, "--rpc-timeout", 60, "--skip-validation")
        elapsed = time.monotonic() - started
        sends = proxy.forwarded("eth_sendRawTransaction")
    assert code == 0, e
    assert "batch 1: committed root" in o and "batch 2: committed root" in o
    assert elapsed >= 19 and sends == 2
    assert w3.eth.get_transaction_count(sender) == nonce + 2  # two commits, no duplicate


class Webhook:
    """A loopback HTTP endpoint recording the JSON bodies POSTed to it."""

    def __init__(self):
        self.posts = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hook.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [p.get("event") for p in self.posts]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition, seconds: float, what: str, process=None):
    deadline = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"watch exited ({process.returncode}) before {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_watch_commits_alerts_to_a_webhook_and_stops_cleanly_on_sigterm(
        tmp_path, chain_one, operator_key, secret_proxy):
    key = operator_key
    w3 = chain_one.w3
    account = load_keystore(key.keystore, PASSWORD)
    deployment = deploy(Sender(w3, account), token=key.token, challenge_period=CHALLENGE, thaw_period=THAW)
    deployment_file, out = tmp_path / "deployment.json", tmp_path / "out"
    deployment.write(deployment_file)
    write_batch(out, 1, settlement_tree(1, deployment.registry, 1, [(address(), address(), 5)]),
                chain_id=1, registry=deployment.registry)
    hook = Webhook()
    watch = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "chain", "watch", "--output", str(out), "--deployment",
         str(deployment_file), "--webhook", hook.url, "--poll-seconds", "0.3", "--skip-validation",
         "--keystore", str(key.keystore), "--password-file", str(key.password_file)],
        cwd=REPO, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    registry = Registry(w3, deployment, Sender(w3, account))
    try:
        for pid in (watch.pid, chain_one.pid):  # what `ps` shows every local user
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert_no_secret(cmdline, key)
        wait_for(lambda: registry.latest_batch() == 1, 120, "the watcher's commit", watch)

        consumer = Account.create()
        w3.provider.make_request("anvil_setBalance", [consumer.address, hex(10**18)])
        Sender(w3, anvil_dev_account()).send(
            contract(w3, TEST_TOKEN, key.token).functions.mint(consumer.address, 1_000), "mint")
        as_consumer = Registry(w3, deployment, Sender(w3, consumer))
        as_consumer.deposit_for(consumer.address, 1_000)
        as_consumer.request_withdrawal(400)
        registry.revoke_batch(1, "operator test")
        revoked = {"BatchRevoked", "BatchesRevoked"}
        wait_for(lambda: "WithdrawalRequested" in hook.events() and revoked & set(hook.events()), 30,
                 "the alerts", watch)
    finally:
        watch.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = watch.communicate(timeout=30)
        finally:
            if watch.poll() is None:
                watch.kill()
            hook.close()
    assert watch.returncode == 0, stdout + stderr
    assert f"ALERT WithdrawalRequested block" in stdout and f"consumer={consumer.address} amount=400" in stdout
    assert "ALERT BatchesRevoked" in stdout or "ALERT BatchRevoked" in stdout
    assert "batch 1: committed root" in stdout
    assert "stopped after the current step" in stdout
    withdrawal = next(p for p in hook.posts if p["event"] == "WithdrawalRequested")
    assert withdrawal["args"]["amount"] == "400" and withdrawal["tx"].startswith("0x")
    assert_no_secret(stdout + stderr + files_text(out), key)
