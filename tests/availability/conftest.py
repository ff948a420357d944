"""One settled output with probes, `meterroot serve` over it and the External Adapter over that,
each a real process on a free loopback port, started once for the session and stopped after.

The output is built for a registry really deployed on the session's anvil, so its proofs can be
claimed there."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from meterroot.children import stop, wait_http
from sinks.chain import anvil
from sinks.chain.deployment import deploy
from sinks.chain.keys import anvil_dev_account
from sinks.chain.rpc import Sender, connect
from eth_account import Account

from settlement.keccak import keccak256
from tests.support.events import CONSUMER_2, PROVIDER_A, PROVIDER_B, T0, event, write_jsonl, write_tariff

ROOT = Path(__file__).resolve().parents[2]
ADAPTER_DIR = ROOT / "adapters" / "availability"
PROBER = "0x7000000000000000000000000000000000000007"
EPOCH = T0 // 3_600_000
CHALLENGE_PERIOD = 100
CONSUMER_ACCOUNT = Account.from_key(keccak256(b"meterroot availability test consumer"))
"""A consumer whose key the tests hold: it signs the spend permit its claims need (SPEC §6 v2)."""
CONSUMER = CONSUMER_ACCOUNT.address


def probe(probe_id, provider=PROVIDER_A, ok=True, latency_ms=10, timestamp=T0, prober=PROBER):
    return {"probe_id": probe_id, "provider": provider, "node_id": "n1", "prober": prober,
            "timestamp": timestamp, "ok": ok, "latency_ms": latency_ms}


# Provider A, epoch E: 8 probes, 6 ok (latencies 40, 10, 30, 20, 60, 50) -> 7500 bps, p50 rank 3
# of the sorted ok latencies = 30, p99 rank 6 = 60. Epoch E+1: 4 probes, 1 ok -> 2500 bps.
# Provider B, epoch E: 3 of 3 ok -> 10000 bps. Plus two bad records (quarantined).
PROBES = (
    [probe(f"a{i}", latency_ms=lat, timestamp=T0 + i * 1000) for i, lat in enumerate([40, 10, 30, 20, 60, 50])]
    + [probe("a-down-1", ok=False, latency_ms=2000, timestamp=T0 + 10_000),
       probe("a-down-2", ok=False, latency_ms=2000, timestamp=T0 + 11_000)]
    + [probe(f"a-next-{i}", ok=i == 0, latency_ms=5, timestamp=T0 + 3_600_000 + i) for i in range(4)]
    + [probe(f"b{i}", provider=PROVIDER_B, latency_ms=7, timestamp=T0 + i) for i in range(3)]
    + [probe("neg", latency_ms=-1), probe("bad-provider", provider="0x12")]
)
EXPECTED = {  # (provider, epoch) -> (probes, ok, bps, p50, p99)
    (PROVIDER_A, EPOCH): (8, 6, 7500, 30, 60),
    (PROVIDER_A, EPOCH + 1): (4, 1, 2500, 5, 5),
    (PROVIDER_B, EPOCH): (3, 3, 10000, 7, 7),
}


def free_port() -> int:
    return anvil.free_port()


@dataclass(frozen=True)
class Settled:
    out: Path
    deployment: object
    url: str


@pytest.fixture(scope="session")
def settled_output(tmp_path_factory, anvil_url) -> Settled:
    """Batch 1 with usage of two providers and the probes above, for a deployed registry."""
    from pipelines.batch import settle

    sender = Sender(connect(anvil_url), anvil_dev_account())
    deployment = deploy(sender, test_token=True, challenge_period=CHALLENGE_PERIOD, thaw_period=300,
                        rpc_url=anvil_url)
    base = tmp_path_factory.mktemp("availability")
    usage = write_jsonl(base / "usage.jsonl", [
        event(f"e{i}", provider=PROVIDER_A if i % 2 else PROVIDER_B, consumer=CONSUMER if i % 3 else CONSUMER_2)
        for i in range(30)])
    probes = write_jsonl(base / "probes" / "watcher.jsonl", PROBES)
    tariff = write_tariff(base / "tariff.json")
    out = base / "out"
    result = settle([str(usage)], str(tariff), str(out), deployment.chain_id, deployment.registry,
                    probes=[str(probes.parent / "*.jsonl")])
    assert result.batch == 1
    return Settled(out, deployment, anvil_url)


@pytest.fixture(scope="session")
def serve_url(settled_output, tmp_path_factory):
    """`meterroot serve` over the settled output, a real process on a free port."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-m", "pipelines.cli", "serve", "--output", str(settled_output.out),
               "--listen", f"127.0.0.1:{port}"]
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", process, log=log, timeout=180)
        yield url
    finally:
        stop(process)


def adapter_entry() -> Path:
    """The launcher operators run (`make adapter`), which starts dist/index.js."""
    entry = ADAPTER_DIR / "dist" / "index.js"
    if not entry.exists():
        raise RuntimeError(f"{entry} is missing: run `make install` (it builds the External Adapter)")
    return ADAPTER_DIR / "start.sh"


def start_adapter(api_endpoint: str, log: Path, **settings) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "API_ENDPOINT": api_endpoint, "EA_PORT": str(port), "EA_HOST": "127.0.0.1",
           "LOG_LEVEL": "error", "METRICS_ENABLED": "false",
           # the framework's wait for its first fetch (default 10 x 200 ms): this machine is shared
           "CACHE_POLLING_MAX_RETRIES": "20", "CACHE_POLLING_SLEEP_MS": "500",
           **{k: str(v) for k, v in settings.items()}}
    with open(log, "wb") as handle:
        process = subprocess.Popen([str(adapter_entry())], stdout=handle, stderr=subprocess.STDOUT,
                                   env=env, cwd=ADAPTER_DIR)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", process, log=log, timeout=180)
    return process, url


@pytest.fixture(scope="session")
def adapter_url(serve_url, tmp_path_factory):
    process, url = start_adapter(serve_url, tmp_path_factory.mktemp("adapter") / "adapter.log")
    try:
        yield url
    finally:
        stop(process)


def post_json(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get_json(url: str, headers: dict | None = None) -> tuple[int, dict | None, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None, dict(response.headers)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body else None, dict(exc.headers)
