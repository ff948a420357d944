"""`meterroot probe`: probe a provider's JSON-RPC endpoint and write probe records (SPEC §14).

What a third-party watcher runs against a provider's public endpoint (and what the gateway does
for its own upstream): `eth_blockNumber` every --probe-seconds; ok when answered within
--timeout-seconds with a head that moved within --stale-seconds. Records go to --out as JSONL
files, one every --file-seconds and one at the end (SIGINT/SIGTERM end the run cleanly).
"""
from __future__ import annotations

import signal
import sys
import time

from settlement.addresses import AddressError, normalize_address
from settlement.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "probe", help="probe a provider's JSON-RPC endpoint and write probe records",
        description="JSON-RPC eth_blockNumber every --probe-seconds against --target; each probe "
                    "is written as a probe record (SPEC §14) into --out, for `meterroot batch "
                    "--probes`. Runs until --count probes, --duration seconds, or SIGINT/SIGTERM.")
    p.add_argument("--target", required=True, metavar="URL", help="the provider's JSON-RPC URL")
    p.add_argument("--provider", required=True, metavar="ADDR", help="the provider probed")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for probe JSONL files")
    p.add_argument("--prober", metavar="ADDR", help="who probes (default: the provider, as its gateway)")
    p.add_argument("--node-id", default=None, help="the provider's node (default: the target's host:port)")
    p.add_argument("--probe-seconds", type=float, default=10.0, help="seconds between probes (default 10)")
    p.add_argument("--timeout-seconds", type=float, default=2.0, help="a probe fails after this (default 2)")
    p.add_argument("--stale-seconds", type=float, default=60.0,
                   help="a head that has not moved for this long is stale (default 60)")
    p.add_argument("--file-seconds", type=float, default=60.0, help="write a file this often (default 60)")
    p.add_argument("--count", type=int, help="stop after this many probes")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=run_probe)


def _address(flag: str, text: str) -> str:
    try:
        return normalize_address(text)
    except AddressError as exc:
        raise UsageError(f"{flag} {exc}") from None


def _positive(flag: str, value) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{flag} must be positive, got {value}")


def run_probe(args) -> int:
    # web3-side imports cost ~1 s: only the probe command pays them (not batch, not --help)
    from sinks.chain.probe import HeadTracker, check_target, probe
    from sinks.probe_writer import ProbeWriter

    url = check_target(args.target)
    provider = _address("--provider", args.provider)
    prober = _address("--prober", args.prober) if args.prober else provider
    for flag, value in (("--probe-seconds", args.probe_seconds), ("--timeout-seconds", args.timeout_seconds),
                        ("--stale-seconds", args.stale_seconds), ("--file-seconds", args.file_seconds),
                        ("--count", args.count), ("--duration", args.duration)):
        _positive(flag, value)
    node_id = args.node_id or url.split("://", 1)[1].split("/", 1)[0]
    if not 1 <= len(node_id) <= 128:
        raise UsageError(f"--node-id must be 1 to 128 characters, got {node_id!r}")
    writer = ProbeWriter(args.out, prober, provider, node_id)
    tracker = HeadTracker(args.stale_seconds)
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    start = time.monotonic()
    last_file = start
    done = ok_count = 0
    while not stopping:
        due = start + done * args.probe_seconds
        if args.duration is not None and due - start >= args.duration:
            break
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
            if stopping:
                break
        timestamp_ms = int(time.time() * 1000)
        result = probe(url, args.timeout_seconds, tracker)
        writer.add(timestamp_ms, result.ok, result.latency_ms)
        done += 1
        ok_count += result.ok
        if not result.ok:
            print(f"probe {done}: not ok ({result.detail})", file=sys.stderr)
        if time.monotonic() - last_file >= args.file_seconds:
            writer.flush()
            last_file = time.monotonic()
        if args.count is not None and done >= args.count:
            break
    writer.flush()
    print(f"{done} probes of {url} for {provider}: {ok_count} ok; {len(writer.written)} file(s) in {args.out}")
    return 0
