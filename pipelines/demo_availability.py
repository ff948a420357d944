"""The availability scene of `meterroot demo` (SPEC §14): a provider's node drops out for part of
an epoch, a watcher's probes see it, the batch settles its availability, `meterroot serve` and
the External Adapter publish it, the node stand-in writes the feed and the provider is slashed.

Every part is the real one: a second anvil is the provider's node (stopped midway), `meterroot
probe` probes it, `meterroot batch --probes` settles, `meterroot serve` and the Node.js adapter run
as processes on loopback, `oracle push` calls the adapter as a node's bridge task would, and
`slashForDowntime` runs on the demo's registry."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from meterroot.children import stop, wait_http

REPO = Path(__file__).resolve().parents[1]
ADAPTER_DIR = REPO / "adapters" / "availability"


DEMO_CONTRACT = "0x00000000000000000000000000000000000000a1"


def usage_event(provider: str, consumer: str, timestamp_ms: int) -> dict:
    """One usage event of the provider: the batch its probes ride on."""
    return {"event_id": f"availability-demo-{timestamp_ms}", "provider": provider, "node_id": "provider-node",
            "consumer": consumer, "contract": DEMO_CONTRACT, "unit": "request", "quantity": 1000,
            "timestamp": timestamp_ms}


def _ask_adapter(url: str, body: bytes, attempts: int = 5) -> dict:
    """POST as a node's bridge task does; the framework answers 504 until its first fetch lands."""
    for attempt in range(attempts):
        try:
            return json.loads(urllib.request.urlopen(urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json"}), timeout=30).read())
        except urllib.error.HTTPError as exc:
            if exc.code != 504 or attempt == attempts - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def run_availability_scene(out: Path, *, chain_url: str, deployment, registry, tariff_path: Path,
                           consumer: str, step: int = 10) -> int:
    from eth_account import Account

    from pipelines.batch import settle
    from pipelines.cli import main as cli
    from settlement.timestamps import epoch_of
    from sinks.chain import anvil
    from sinks.chain.feed import Feed, deploy_feed
    from sinks.chain.registry import advance_time

    w3 = registry.w3
    provider = Account.create().address
    registry.stake(4 * deployment.min_provider_stake, provider=provider, mint=True)
    scene = out / "availability"
    node_port = anvil.free_port()
    node_log = scene / "provider-node.log"
    scene.mkdir(parents=True, exist_ok=True)
    node = anvil.launch(node_port, node_log)
    node_url = f"http://127.0.0.1:{node_port}"
    anvil.wait_ready(node_url, node, node_log)
    probes = scene / "probes"
    probe_args = ["probe", "--target", node_url, "--provider", provider, "--out", str(probes),
                  "--probe-seconds", "0.2", "--timeout-seconds", "1", "--count", "10"]
    if cli(probe_args) != 0:
        return 1
    anvil.terminate(node.pid)
    if cli(probe_args) != 0:
        return 1
    print(f"{step}. provider {provider} staked {4 * deployment.min_provider_stake} wei; a watcher probed its node "
          f"{node_url} 10 times, then the node stopped and 10 more probes failed (files in {probes})")

    now_ms = int(time.time() * 1000)
    usage = scene / "usage.jsonl"
    usage.write_text(json.dumps(usage_event(provider, consumer, now_ms)) + "\n")
    result = settle([str(usage)], str(tariff_path), str(out), deployment.chain_id, deployment.registry,
                    ["--runner=FnApiRunner"], probes=[str(probes / "*.jsonl")])
    rows = result.manifest["availability"]["rows"]
    mine = [r for r in rows if r["provider"] == provider]
    epoch = mine[0]["epoch"]
    print(f"{step + 1}. batch {result.batch} settles the probes: provider availability in epoch {epoch}: "
          f"{mine[0]['availability_bps']} bps ({mine[0]['ok_probes']} of {mine[0]['probes']} ok, "
          f"p50 {mine[0]['latency_p50_ms']} ms)")

    serve = adapter = None
    try:
        serve_port, adapter_port = anvil.free_port(), anvil.free_port()
        serve_url, adapter_url = f"http://127.0.0.1:{serve_port}", f"http://127.0.0.1:{adapter_port}"
        serve = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--output", str(out),
                                  "--listen", f"127.0.0.1:{serve_port}"], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=open(scene / "serve.log", "wb"))
        wait_http(serve_url + "/health", serve, log=scene / "serve.log")
        env = {**os.environ, "API_ENDPOINT": serve_url, "EA_PORT": str(adapter_port), "EA_HOST": "127.0.0.1",
               "LOG_LEVEL": "error", "METRICS_ENABLED": "false", "CACHE_POLLING_MAX_RETRIES": "20",
               "CACHE_POLLING_SLEEP_MS": "500"}
        adapter = subprocess.Popen([str(ADAPTER_DIR / "start.sh")], cwd=ADAPTER_DIR, env=env,
                                   stdout=subprocess.DEVNULL, stderr=open(scene / "adapter.log", "wb"))
        wait_http(adapter_url + "/health", adapter, log=scene / "adapter.log")
        request = json.dumps({"id": "demo", "data": {"endpoint": "availability", "provider": provider,
                                                     "epoch": epoch}}).encode()
        answer = _ask_adapter(adapter_url, request)
        print(f"{step + 2}. `meterroot serve` at {serve_url}; the External Adapter at {adapter_url} answers "
              f"result {answer['result']} for provider {provider}, epoch {epoch}")

        feed_deployment = deploy_feed(registry.sender, provider, tariff_epoch_seconds(tariff_path),
                                      rpc_url=chain_url)
        feed_file = scene / "feed.json"
        feed_deployment.write(feed_file)
        block_now = registry.block_timestamp()
        epoch_end = (epoch + 1) * tariff_epoch_seconds(tariff_path)
        if block_now <= epoch_end:
            advance_time(w3, epoch_end - block_now + 1)
        if cli(["oracle", "push", "--adapter", adapter_url, "--feed", str(feed_file), "--epoch", str(epoch)]) != 0:
            return 1
        feed = Feed(w3, feed_deployment)
        round_ = feed.round_of_epoch(epoch)
        print(f"{step + 3}. the node stand-in (`meterroot oracle push`) wrote AvailabilityFeed {feed_deployment.feed}: "
              f"round {round_.round_id} = {round_.answer} bps (decimals 4), updatedAt {round_.updated_at}")

        registry.set_availability_feed(provider, feed_deployment.feed)
        sla = registry.contract.functions.slaBps().call()
        before = registry.stakes(provider).staked
        treasury_before = registry.token_balance(deployment.treasury)
        registry.slash_for_downtime(provider, epoch)
        after = registry.stakes(provider).staked
        print(f"{step + 4}. slashForDowntime({provider}, {epoch}): {round_.answer} bps < SLA {sla} bps; stake "
              f"{before} -> {after} wei, treasury +{registry.token_balance(deployment.treasury) - treasury_before} "
              f"wei")
        if epoch_of(now_ms, tariff_epoch_seconds(tariff_path)) != epoch:
            raise RuntimeError(f"the probes' epoch {epoch} is not the epoch of their time {now_ms}")
    finally:
        stop(adapter)
        stop(serve)
    return 0


def tariff_epoch_seconds(tariff_path: Path) -> int:
    from settlement.tariff import load_tariff
    return load_tariff(str(tariff_path)).epoch_seconds
