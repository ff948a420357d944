"""`meterroot serve` proofs/s on a batch of N leaves (target: >= 1,000/s at 100k leaves) and the
External Adapter's requests/s and latency from its cache (target: p99 <= 20 ms).

Both servers are the real processes on free loopback ports: `meterroot serve`, and the adapter
started by adapters/availability/start.sh with only the settings `make adapter` passes (its serve
URL and port; the metrics port moved to a free one), so the figure is that of what operators run.
The client is one aiohttp process keeping --concurrency requests in flight for --seconds, after
--warmup-seconds of the same load that are not counted. Every proof answered is checked to lead
from its leaf to the root.

    .venv/bin/python benchmarks/bench_availability.py --leaves 100000
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from meterroot.children import stop, wait_http  # noqa: E402
from settlement.availability import AVAILABILITY_SCHEMA  # noqa: E402
from sinks.chain.anvil import free_port  # noqa: E402
from settlement.ledger import LedgerHead  # noqa: E402
from settlement.merkle import (SETTLEMENT_LEAF_ENCODING, StandardMerkleTree, hash_leaf,  # noqa: E402
                               process_proof, settlement_leaf_hashes)
from sinks import layout  # noqa: E402

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PROVIDERS = [f"0x{0x1000 + i:040x}" for i in range(8)]
EPOCH = 498754


def build_output(out: Path, n: int) -> list[tuple[str, str]]:
    """OUT with batch 1: a tree of n leaves, its manifest, availability rows, and a ledger HEAD."""
    from eth_utils import to_checksum_address
    providers = [to_checksum_address(p) for p in PROVIDERS]
    consumers = [to_checksum_address(f"0x{i:040x}") for i in range(1, n // len(providers) + 2)]
    rows = [(consumers[i // len(providers)], providers[i % len(providers)], 10**15 + i) for i in range(n)]
    values = [["31337", REGISTRY, "1", c, p, str(a)] for c, p, a in rows]
    tree = StandardMerkleTree.of(values, SETTLEMENT_LEAF_ENCODING,
                                 leaf_hashes=settlement_leaf_hashes(31337, REGISTRY, 1, rows))
    layout.write_compact_json(layout.tree_path(out, 1), tree.dump())
    root = "0x" + tree.root.hex()
    layout.write_json(layout.manifest_path(out, 1), {
        "batch": 1, "root": root, "leaf_count": n, "total": str(sum(a for *_, a in rows)), "epochs": [EPOCH],
        "chain_id": 31337, "registry": REGISTRY, "tariff_hash": "bench"})
    availability = pa.table({
        "batch": [1] * len(providers), "provider": providers, "epoch": [EPOCH] * len(providers),
        "probes": [360] * len(providers), "ok_probes": [350 + i for i in range(len(providers))],
        "availability_bps": [(350 + i) * 10000 // 360 for i in range(len(providers))],
        "latency_p50_ms": [12] * len(providers), "latency_p99_ms": [40] * len(providers),
        "probers": [2] * len(providers), "first_probe_ms": [0] * len(providers),
        "last_probe_ms": [1] * len(providers)}, schema=AVAILABILITY_SCHEMA)
    layout.availability_path(out, 1).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(availability, layout.availability_path(out, 1))
    head = LedgerHead(batch=1, epoch_seconds=3600, chain_id=31337, registry=REGISTRY, roots={1: root})
    layout.write_json(layout.head_path(out), head.to_json())
    return [(c, p) for c, p, _ in rows]


def fill(adapter_url: str, body: str, attempts: int = 5) -> None:
    """Ask once so the framework fetches the answer into its cache. A first request waits for the
    background fetch (CACHE_POLLING_*: 2 s by default) and answers 504 when it is later; ask again."""
    for attempt in range(attempts):
        try:
            urllib.request.urlopen(urllib.request.Request(
                adapter_url, data=body.encode(), headers={"Content-Type": "application/json"})).read()
            return
        except urllib.error.HTTPError as exc:
            if exc.code != 504 or attempt == attempts - 1:
                raise SystemExit(f"the adapter answered {exc.code} to {body}: {exc.read()[:300]!r}")


def percentile(sorted_values: list[float], p: int) -> float:
    return sorted_values[max(0, (len(sorted_values) * p + 99) // 100 - 1)]


async def load(make_request, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    import aiohttp
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(seed: int):
            rng = random.Random(seed)
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                await make_request(session, rng)
                latencies.append(time.perf_counter() - start)
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return len(latencies), sorted(latencies)


def report(name: str, count: int, latencies: list[float], seconds: float) -> None:
    print(f"{name}: {count / seconds:,.0f} requests/s over {seconds:g} s; latency p50 "
          f"{percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup-seconds", type=float, default=2,
                        help="load before each measurement, not counted (JIT, connection pools)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        started = time.perf_counter()
        pairs = build_output(out, args.leaves)
        print(f"built a batch of {args.leaves:,} leaves in {time.perf_counter() - started:.1f} s")
        serve_port, adapter_port = free_port(), free_port()
        serve = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--output", str(out),
                                  "--listen", f"127.0.0.1:{serve_port}"], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        adapter = None
        try:
            serve_url = f"http://127.0.0.1:{serve_port}"
            wait_http(serve_url + "/health", serve, timeout=120)
            started = time.perf_counter()
            consumer, payee = pairs[0]
            urllib.request.urlopen(f"{serve_url}/batches/1/proof?consumer={consumer}&payee={payee}").read()
            print(f"first proof (loads and indexes the tree): {time.perf_counter() - started:.2f} s")

            bad = []

            async def proof_request(session, rng):
                consumer, payee = pairs[rng.randrange(len(pairs))]
                async with session.get(f"{serve_url}/batches/1/proof",
                                       params={"consumer": consumer, "payee": payee}) as response:
                    body = await response.json()
                if response.status != 200 or process_proof(
                        hash_leaf(body["leafEncoding"], body["value"]),
                        [bytes.fromhex(p[2:]) for p in body["proof"]]).hex() != body["root"][2:]:
                    bad.append(body)

            asyncio.run(load(proof_request, args.warmup_seconds, args.concurrency))
            bad.clear()
            count, latencies = asyncio.run(load(proof_request, args.seconds, args.concurrency))
            report(f"serve proofs ({args.leaves:,} leaves, {args.concurrency} in flight)", count, latencies,
                   args.seconds)
            if bad:
                raise SystemExit(f"{len(bad)} proofs did not verify: {bad[0]}")

            env = {**os.environ, "API_ENDPOINT": serve_url, "EA_PORT": str(adapter_port),
                   "METRICS_PORT": str(free_port())}
            adapter = subprocess.Popen([str(REPO / "adapters" / "availability" / "start.sh")], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            adapter_url = f"http://127.0.0.1:{adapter_port}"
            wait_http(adapter_url + "/health", adapter, timeout=120)
            requests = [json.dumps({"id": "bench", "data": {"endpoint": "availability", "provider": p,
                                                            "epoch": EPOCH}}) for p in PROVIDERS]
            for body in requests:  # fill the cache: what follows is served from it
                fill(adapter_url, body)
            failed = []

            async def adapter_request(session, rng):
                async with session.post(adapter_url, data=requests[rng.randrange(len(requests))],
                                        headers={"Content-Type": "application/json"}) as response:
                    body = await response.json()
                if response.status != 200 or not isinstance(body.get("result"), int):
                    failed.append(body)

            asyncio.run(load(adapter_request, args.warmup_seconds, args.concurrency))
            failed.clear()
            count, latencies = asyncio.run(load(adapter_request, args.seconds, args.concurrency))
            report(f"adapter from cache ({len(requests)} feeds, {args.concurrency} in flight)", count, latencies,
                   args.seconds)
            if failed:
                raise SystemExit(f"{len(failed)} adapter requests failed: {failed[0]}")
        finally:
            for process in (serve, adapter):
                stop(process)


if __name__ == "__main__":
    main()
