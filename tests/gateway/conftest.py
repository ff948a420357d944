"""SDK <-> gateway <-> anvil, all real processes on 127.0.0.1: one anvil for the session (the
suite's), one registry, one shared gateway in front of anvil's own JSON-RPC; tests that need
other settings (a small credit limit, a kill) start their own gateway."""
from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account

from meterroot.gateway import process
from sinks.chain import anvil
from sinks.chain.deployment import RegistryConfig, deploy
from sinks.chain.keys import anvil_dev_account
from sinks.chain.registry import Registry
from sinks.chain.rpc import Sender, connect

CONFIG = RegistryConfig(challenge_period=100, max_batch_delay=50, thaw_period=300, withdrawal_window=100,
                        dispute_period=100, unstake_thaw=250, admin_delay=60, min_provider_stake=1_000,
                        dispute_bond=50)
"""Short periods (tests move anvil's clock), a small provider stake (in test-token wei)."""
pytestmark = pytest.mark.slow


@dataclass
class GatewayProcess:
    url: str
    port: int
    usage_dir: Path
    provider: object
    process: subprocess.Popen
    log: Path
    args: list = field(default_factory=list)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.process = process.launch(self.args, self.provider.key.hex(), self.log)
        process.wait_healthy(self.url, self.process, self.log)

    def usage_lines(self) -> list[str]:
        lines = []
        for path in sorted(self.usage_dir.glob("usage-*.jsonl")):
            lines += path.read_text().splitlines()
        return lines


@pytest.fixture(scope="session")
def chain(anvil_url):
    w3 = connect(anvil_url)
    dev = Sender(w3, anvil_dev_account())
    deployment = deploy(dev, test_token=True, config=CONFIG, rpc_url=anvil_url)
    return w3, deployment, Registry(w3, deployment, dev)


@pytest.fixture(scope="session")
def start_gateway(chain, anvil_url, tmp_path_factory):
    """`start_gateway(**options)`: a gateway process in front of anvil, stopped at the end."""
    w3, deployment, _ = chain
    started = []

    def start(*, upstream=None, credit_limit_wei=10**18, extra=(), provider=None) -> GatewayProcess:
        folder = tmp_path_factory.mktemp("gateway")
        port = anvil.free_port()
        provider = provider or Account.create()
        args = ["--upstream", upstream or anvil_url, "--listen", f"127.0.0.1:{port}",
                "--usage-dir", str(folder / "usage"), "--registry", deployment.registry, "--rpc-url", anvil_url,
                "--credit-limit-wei", str(credit_limit_wei), *extra]
        log = folder / "gateway.log"
        child = process.launch(args, provider.key.hex(), log)
        url = f"http://127.0.0.1:{port}"
        process.wait_healthy(url, child, log)
        handle = GatewayProcess(url, port, folder / "usage", provider, child, log, args)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture(scope="session")
def gateway(start_gateway):
    """The shared gateway: deposit checks cached 60 s, so a refusal after a withdrawal request
    can only come from its WithdrawalRequested watcher."""
    return start_gateway(extra=("--standing-ttl", "60"))


@pytest.fixture
def new_consumer(chain, anvil_url, tmp_path):
    """`new_consumer(deposit=wei)`: a fresh funded wallet as an SDK Consumer (deposit 0: none)."""
    from meterroot.sdk import Consumer
    w3, deployment, _ = chain
    count = [0]

    def make(deposit: int = 10**18, **kwargs):
        account = Account.create()
        w3.provider.make_request("anvil_setBalance", [account.address, hex(10**19)])
        count[0] += 1
        consumer = Consumer(key=account.key.hex(), registry=deployment.registry, rpc_url=anvil_url,
                            permit_file=tmp_path / f"permits-{count[0]}.jsonl", **kwargs)
        if deposit:
            consumer.deposit(deposit, mint=True)
        return consumer
    return make
