"""Requests per second through `meterroot gateway`, and the latency it adds.

    python benchmarks/bench_gateway.py [--seconds 10] [--connections 32]

Processes, all on 127.0.0.1: anvil with a registry (the consumer's deposit is read from it), a
minimal upstream that answers every request with a fixed JSON-RPC result (so the figures are
the gateway's, not a node's), the gateway in front of it, and this process as the client (raw
asyncio keep-alive connections: an HTTP library would be slower than what it measures). The
consumer signs in with the SDK and deposits; every request is a metered eth_blockNumber.

Figures: throughput with --connections concurrent connections; latency with one connection,
direct to the upstream and through the gateway (p50/p99 of each; added = through − direct).
Prints figures; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

UPSTREAM = r'''
import asyncio, sys
BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x10"}'
REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0: return
            head = self.buf[:end].lower(); length = 0
            i = head.find(b"content-length:")
            if i >= 0: length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
            if len(self.buf) < end + 4 + length: return
            self.buf = self.buf[end + 4 + length:]
            self.t.write(REPLY)
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
'''


class Client(asyncio.Protocol):
    """One keep-alive connection sending `request` again as soon as the previous answer is whole."""

    def __init__(self, request: bytes, latencies: list | None, stop_at: float, done: asyncio.Future):
        self.request, self.latencies, self.stop_at, self.done = request, latencies, stop_at, done
        self.buf = b""
        self.count = 0
        self.errors = 0

    def connection_made(self, transport):
        self.transport = transport
        self._send()

    def _send(self):
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data):
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end]
        i = head.lower().find(b"content-length:")
        stop = head.find(b"\r\n", i)
        length = int(head[i + 15:stop if stop > 0 else None])
        if len(self.buf) < end + 4 + length:
            return
        if not head.startswith(b"HTTP/1.1 200"):
            self.errors += 1
        self.buf = self.buf[end + 4 + length:]
        now = time.perf_counter()
        self.count += 1
        if self.latencies is not None:
            self.latencies.append(now - self.sent)
        if now < self.stop_at:
            self._send()
        else:
            self.transport.close()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(None)


async def load(port: int, request: bytes, connections: int, seconds: float, latencies: list | None):
    loop = asyncio.get_running_loop()
    stop_at = time.perf_counter() + seconds
    clients = []
    for _ in range(connections):
        done = loop.create_future()
        _, client = await loop.create_connection(lambda: Client(request, latencies, stop_at, done), "127.0.0.1", port)
        clients.append((client, done))
    started = time.perf_counter()
    await asyncio.gather(*(d for _, d in clients))
    elapsed = time.perf_counter() - started
    return sum(c.count for c, _ in clients), sum(c.errors for c, _ in clients), elapsed


def http_request(port: int, token: str | None) -> bytes:
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n" % port + auth +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_port(port: int, process, timeout: float = 60) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a benchmark process exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--profile", metavar="FILE", help="run the gateway under cProfile, stats to FILE")
    args = parser.parse_args()

    from eth_account import Account
    from meterroot.sdk import Consumer
    from sinks.chain import anvil
    from sinks.chain.deployment import RegistryConfig, deploy
    from sinks.chain.keys import anvil_dev_account
    from sinks.chain.rpc import Sender, connect

    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    processes = []
    try:
        chain_port = anvil.free_port()
        chain = anvil.launch(chain_port, work / "anvil.log")
        processes.append(chain)
        rpc_url = f"http://127.0.0.1:{chain_port}"
        anvil.wait_ready(rpc_url, chain, work / "anvil.log")
        w3 = connect(rpc_url)
        deployment = deploy(Sender(w3, anvil_dev_account()), test_token=True, rpc_url=rpc_url,
                            config=RegistryConfig(challenge_period=100, max_batch_delay=50, thaw_period=300))

        upstream_port = anvil.free_port()
        upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(upstream_port)])
        processes.append(upstream)
        wait_port(upstream_port, upstream)

        gateway_port = anvil.free_port()
        provider = Account.create()
        gateway = subprocess.Popen(
            [sys.executable, *(["-m", "cProfile", "-o", args.profile] if args.profile else []),
             "-m", "meterroot.gateway", "--upstream", f"http://127.0.0.1:{upstream_port}",
             "--listen", f"127.0.0.1:{gateway_port}", "--usage-dir", str(work / "usage"),
             "--registry", deployment.registry, "--rpc-url", rpc_url, "--credit-limit-wei", str(10**30),
             "--standing-ttl", "3600"],
            cwd=REPO, env={**os.environ, "METERROOT_PROVIDER_KEY": provider.key.hex()},
            stdout=subprocess.DEVNULL, stderr=open(work / "gateway.log", "wb"))
        processes.append(gateway)
        wait_port(gateway_port, gateway)

        account = Account.create()
        w3.provider.make_request("anvil_setBalance", [account.address, hex(10**19)])
        consumer = Consumer(key=account.key.hex(), registry=deployment.registry, rpc_url=rpc_url)
        consumer.deposit(10**24, mint=True)
        session = consumer.sign_in(f"http://127.0.0.1:{gateway_port}", lifetime_seconds=3600)
        session.rpc("eth_blockNumber")  # the deposit check is cached from here on
        token = session.info["token"]

        through = http_request(gateway_port, token)
        direct = http_request(upstream_port, None)
        asyncio.run(load(gateway_port, through, 8, 1.0, None))  # warm up
        cpu_before = cpu_seconds(gateway.pid)
        served, errors, elapsed = asyncio.run(load(gateway_port, through, args.connections, args.seconds, None))
        gateway_cpu = cpu_seconds(gateway.pid) - cpu_before
        direct_served, _, direct_elapsed = asyncio.run(load(upstream_port, direct, args.connections, 3.0, None))

        direct_lat: list[float] = []
        through_lat: list[float] = []
        for _ in range(2):  # alternate, so drift of a shared machine hits both alike
            asyncio.run(load(upstream_port, direct, 1, args.latency_seconds / 2, direct_lat))
            asyncio.run(load(gateway_port, through, 1, args.latency_seconds / 2, through_lat))

        lines = sum(len(p.read_text().splitlines()) for p in (work / "usage").glob(".usage-*"))
        ms = lambda v: f"{v * 1000:.3f} ms"  # noqa: E731
        print(json.dumps({
            "connections": args.connections,
            "gateway_requests_per_second": round(served / elapsed),
            "gateway_errors": errors,
            "gateway_cpu_ms_per_request": round(gateway_cpu / served * 1000, 3),
            "gateway_requests_per_cpu_second": round(served / gateway_cpu) if gateway_cpu else None,
            "load_average_1min_after": os.getloadavg()[0],
            "upstream_alone_requests_per_second": round(direct_served / direct_elapsed),
            "latency_direct_p50": ms(percentile(direct_lat, .5)), "latency_direct_p99": ms(percentile(direct_lat, .99)),
            "latency_gateway_p50": ms(percentile(through_lat, .5)), "latency_gateway_p99": ms(percentile(through_lat, .99)),
            "added_p50": ms(percentile(through_lat, .5) - percentile(direct_lat, .5)),
            "added_p99": ms(percentile(through_lat, .99) - percentile(direct_lat, .99)),
            "added_mean": ms(statistics.mean(through_lat) - statistics.mean(direct_lat)),
            "usage_lines_in_open_file": lines,
        }, indent=2))
    finally:
        for process in reversed(processes):
            if process is chain:
                anvil.terminate(process.pid)
            else:
                process.terminate()
                process.wait(timeout=15)


if __name__ == "__main__":
    main()
